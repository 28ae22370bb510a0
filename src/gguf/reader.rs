//! The GGUF reader. Every number the file provides is checked before it is used: counts against
//! the bytes that could hold them (nothing is allocated from a count before its bytes are known
//! to exist), string and array lengths against the rest of the file, dimensions (1 to 4, each
//! below 2^63, their product and byte size without overflow, rows of whole blocks), tensor
//! offsets (aligned, `offset + size` without overflow, inside the file, no two tensors
//! overlapping), unique keys and tensor names, known value and tensor types. Errors name the
//! file, the key or tensor, and the field.

use super::{GgmlType, MetaArray, MetaValue, Metadata, DEFAULT_ALIGNMENT, MAGIC};
use memmap2::Mmap;
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// ggml's limit on tensor dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// One tensor's entry in a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Data size in bytes.
    pub n_bytes: u64,
}

/// The bytes of a file: mapped, or owned (files read from memory, tests, fuzzing).
enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A memory-mapped, fully validated GGUF file.
pub struct GgufFile {
    /// Path it was opened from.
    pub path: PathBuf,
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Metadata,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_start: u64,
    bytes: Bytes,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Smallest encoding of one metadata key/value pair: key length, type, one byte of value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

impl<'a> Cursor<'a> {
    fn rest(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| {
            format!(
                "truncated: needs {n} bytes at byte {}, the file has {}",
                self.pos,
                self.buf.len()
            )
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A string's bytes: a u64 length, then that many bytes.
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let at = self.pos;
        let n = self.u64().map_err(|e| format!("length: {e}"))?;
        if n > self.rest() {
            return Err(format!(
                "length {n} at byte {at} runs past the end of the file ({} bytes left)",
                self.rest()
            ));
        }
        self.take(n as usize)
    }
    fn string(&mut self) -> Result<String, String> {
        let at = self.pos;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("string at byte {at} is not UTF-8"))
    }

    fn value(&mut self, ty: u32) -> Result<MetaValue, String> {
        Ok(match ty {
            0 => MetaValue::U8(self.u8()?),
            1 => MetaValue::I8(self.u8()? as i8),
            2 => MetaValue::U16(self.u16()?),
            3 => MetaValue::I16(self.u16()? as i16),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(self.u32()? as i32),
            6 => MetaValue::F32(f32::from_bits(self.u32()?)),
            7 => MetaValue::Bool(self.u8()? != 0),
            8 => MetaValue::Str(self.string()?),
            9 => MetaValue::Array(self.array()?),
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(self.u64()? as i64),
            12 => MetaValue::F64(f64::from_bits(self.u64()?)),
            t => return Err(format!("unknown value type {t}")),
        })
    }

    fn array(&mut self) -> Result<MetaArray, String> {
        let ty = self.u32().map_err(|e| format!("array element type: {e}"))?;
        let at = self.pos;
        let n = self.u64().map_err(|e| format!("array length: {e}"))?;
        let elem: u64 = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => return Err("nested arrays are not supported".into()),
            t => return Err(format!("unknown array element type {t}")),
        };
        // The count must fit in the bytes left before anything is allocated for it.
        if n.checked_mul(elem).is_none_or(|b| b > self.rest()) {
            return Err(format!(
                "array length {n} at byte {at} needs at least {} bytes, {} are left",
                n.saturating_mul(elem),
                self.rest()
            ));
        }
        let n = n as usize;
        macro_rules! many {
            ($v:ident, $e:expr) => {{
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    out.push($e.map_err(|e| format!("element {i}: {e}"))?);
                }
                MetaArray::$v(out)
            }};
        }
        Ok(match ty {
            0 => MetaArray::U8(self.take(n)?.to_vec()),
            1 => MetaArray::I8(self.take(n)?.iter().map(|&b| b as i8).collect()),
            2 => many!(U16, self.u16()),
            3 => many!(I16, self.u16().map(|v| v as i16)),
            4 => many!(U32, self.u32()),
            5 => many!(I32, self.u32().map(|v| v as i32)),
            6 => many!(F32, self.u32().map(f32::from_bits)),
            7 => MetaArray::Bool(self.take(n)?.iter().map(|&b| b != 0).collect()),
            8 => many!(Str, self.bytes().map(<[u8]>::to_vec)),
            10 => many!(U64, self.u64()),
            11 => many!(I64, self.u64().map(|v| v as i64)),
            _ => many!(F64, self.u64().map(f64::from_bits)),
        })
    }
}

/// The parsed header of a GGUF file.
struct Header {
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

fn parse(buf: &[u8]) -> Result<Header, String> {
    let mut c = Cursor { buf, pos: 0 };
    match c.take(4) {
        Err(_) if buf.is_empty() => return Err("not a GGUF file (empty)".into()),
        Err(_) => return Err(format!("not a GGUF file ({} bytes)", buf.len())),
        Ok(m) if m != MAGIC => return Err("not a GGUF file (bad magic)".into()),
        Ok(_) => {}
    }
    let version = c.u32().map_err(|e| format!("header: version: {e}"))?;
    if !(2..=3).contains(&version) {
        let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            " (a big-endian file; gq reads little-endian GGUF)"
        } else {
            ""
        };
        return Err(format!("unsupported GGUF version {version}{hint}"));
    }
    let n_tensors = c.u64().map_err(|e| format!("header: tensor count: {e}"))?;
    let n_kv = c
        .u64()
        .map_err(|e| format!("header: metadata count: {e}"))?;
    // Both counts are claims; together their entries must fit in the rest of the file.
    let need = n_kv
        .checked_mul(MIN_KV_BYTES)
        .and_then(|a| n_tensors.checked_mul(MIN_TENSOR_INFO_BYTES)?.checked_add(a));
    if need.is_none_or(|n| n > c.rest()) {
        return Err(format!(
            "header: {n_kv} metadata entries and {n_tensors} tensor infos cannot fit in the {} bytes left",
            c.rest()
        ));
    }
    let mut metadata = Metadata::new();
    let mut keys: HashSet<String> = HashSet::new();
    for i in 0..n_kv {
        let key = c
            .string()
            .map_err(|e| format!("metadata entry {i}: key: {e}"))?;
        let ty = c
            .u32()
            .map_err(|e| format!("metadata key {key}: value type: {e}"))?;
        let v = c
            .value(ty)
            .map_err(|e| format!("metadata key {key}: value: {e}"))?;
        if !keys.insert(key.clone()) {
            return Err(format!("metadata key {key}: appears twice"));
        }
        metadata.push_new(key, v);
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => v
            .as_u64()
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| format!("metadata key general.alignment: {v} is not a power of two"))?,
    };
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names: HashSet<String> = HashSet::new();
    for i in 0..n_tensors {
        let name = c
            .string()
            .map_err(|e| format!("tensor info {i}: name: {e}"))?;
        let f = |field: &str, e: String| format!("tensor {name}: {field}: {e}");
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name}: appears twice"));
        }
        let nd = c.u32().map_err(|e| f("n_dims", e))?;
        if nd == 0 || nd > MAX_DIMS {
            return Err(f("n_dims", format!("{nd} (must be 1 to {MAX_DIMS})")));
        }
        let mut dims = Vec::with_capacity(nd as usize);
        for j in 0..nd {
            let d = c.u64().map_err(|e| f(&format!("dims[{j}]"), e))?;
            // ggml holds dimensions as int64_t.
            if d > i64::MAX as u64 {
                return Err(f(
                    &format!("dims[{j}]"),
                    format!("{d} is negative as int64"),
                ));
            }
            dims.push(d);
        }
        let tid = c.u32().map_err(|e| f("type", e))?;
        let ty = GgmlType::from_id(tid)
            .ok_or_else(|| f("type", format!("unknown ggml type id {tid}")))?;
        let offset = c.u64().map_err(|e| f("offset", e))?;
        let n: u64 = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| f("dims", format!("{dims:?}: element count overflows")))?;
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(f(
                "dims[0]",
                format!(
                    "row of {} is not a multiple of {}'s block of {}",
                    dims[0],
                    ty,
                    ty.block_size()
                ),
            ));
        }
        let row = usize::try_from(dims[0])
            .ok()
            .and_then(|d| ty.row_bytes(d))
            .ok_or_else(|| f("dims", format!("{dims:?}: byte size overflows")))?;
        let n_bytes = n
            .checked_div(dims[0])
            .unwrap_or(0)
            .checked_mul(row as u64)
            .ok_or_else(|| f("dims", format!("{dims:?}: byte size overflows")))?;
        if offset % alignment != 0 {
            return Err(f(
                "offset",
                format!("{offset} is not aligned to {alignment}"),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
    }
    let data_start = (c.pos as u64)
        .checked_next_multiple_of(alignment)
        .ok_or("data section start overflows")?;
    let file_len = buf.len() as u64;
    for t in &tensors {
        let start = data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => {
                let _ = s;
            }
            (Some(s), Some(e)) => {
                return Err(format!(
                    "tensor {}: offset: data [{s}, {e}) runs past the end of the file ({file_len} bytes)",
                    t.name
                ))
            }
            _ => {
                return Err(format!(
                    "tensor {}: offset: {} + {} bytes overflows",
                    t.name, t.offset, t.n_bytes
                ))
            }
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for w in by_offset.windows(2) {
        if w[1].offset < w[0].offset + w[0].n_bytes {
            return Err(format!(
                "tensor {}: offset: data [{}, {}) overlaps tensor {} [{}, {})",
                w[1].name,
                w[1].offset,
                w[1].offset + w[1].n_bytes,
                w[0].name,
                w[0].offset,
                w[0].offset + w[0].n_bytes
            ));
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        data_start,
    })
}

impl GgufFile {
    /// Maps and validates a GGUF file: header, metadata, tensor infos, offsets and sizes.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display();
        let file = File::open(&path).map_err(|e| anyhow::anyhow!("{shown}: cannot open: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| anyhow::anyhow!("{shown}: cannot open: {e}"))?;
        if meta.is_dir() {
            anyhow::bail!("{shown}: is a directory, not a GGUF file");
        }
        let bytes = if meta.len() == 0 {
            Bytes::Owned(Vec::new()) // mapping an empty file fails; report it as empty instead
        } else {
            // SAFETY: the map is read-only; gq never writes to a file it has mapped.
            Bytes::Map(
                unsafe { Mmap::map(&file) }
                    .map_err(|e| anyhow::anyhow!("{shown}: cannot map: {e}"))?,
            )
        };
        Self::from_parts(path, bytes)
    }

    /// Validates GGUF bytes held in memory; `path` names them in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> anyhow::Result<GgufFile> {
        Self::from_parts(path.into(), Bytes::Owned(bytes))
    }

    fn from_parts(path: PathBuf, bytes: Bytes) -> anyhow::Result<GgufFile> {
        let h = parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(GgufFile {
            path,
            version: h.version,
            metadata: h.metadata,
            tensors: h.tensors,
            data_start: h.data_start,
            bytes,
        })
    }

    /// The raw bytes of a tensor.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let s = (self.data_start + t.offset) as usize;
        &self.bytes[s..s + t.n_bytes as usize]
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made headers: each broken field gives its own error (the CLI-level catalogue is in
    //! tests/bad_gguf.rs). Runs under Miri.
    use super::*;

    /// A tiny valid file: one u32 key, one F32 tensor of 4 elements.
    fn good() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&1u64.to_le_bytes()); // kv
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(b"k");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(b"t");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend_from_slice(&[0u8; 16]);
        b
    }

    fn err(b: Vec<u8>) -> String {
        match GgufFile::from_bytes("x.gguf", b) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_a_minimal_file() {
        let f = GgufFile::from_bytes("x.gguf", good()).unwrap();
        assert_eq!(f.metadata.get("k").and_then(|v| v.as_u64()), Some(7));
        assert_eq!(f.tensors[0].n_bytes, 16);
        assert_eq!(f.tensor_data(&f.tensors[0]).len(), 16);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let g = good();
        // Cutting anywhere inside the header or the tensor data is an error, never a panic.
        for n in 0..g.len() {
            let e = err(g[..n].to_vec());
            assert!(e.starts_with("x.gguf: "), "{e}");
        }
    }

    #[test]
    fn absurd_counts_and_lengths() {
        let mut g = good();
        g[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(g).contains("cannot fit"));
        let mut g = good();
        g[24..32].copy_from_slice(&(u64::MAX - 3).to_le_bytes()); // key length
        let e = err(g);
        assert!(e.contains("metadata entry 0: key: length"), "{e}");
        let mut g = good();
        g[33..37].copy_from_slice(&13u32.to_le_bytes());
        let e = err(g);
        assert!(
            e.contains("metadata key k: value: unknown value type 13"),
            "{e}"
        );
        // An array of u64 whose length would need more bytes than the file has.
        let mut g = good();
        g[33..37].copy_from_slice(&9u32.to_le_bytes());
        g[37..41].copy_from_slice(&10u32.to_le_bytes());
        g[41..49].copy_from_slice(&(1u64 << 61).to_le_bytes());
        let e = err(g);
        assert!(
            e.contains("metadata key k: value: array length 2305843009213693952"),
            "{e}"
        );
    }

    #[test]
    fn dims_offsets_and_names() {
        // dims[0] (at 54) so large the byte size overflows; then past the end of the file.
        let mut g = good();
        g[54..62].copy_from_slice(&(1u64 << 62).to_le_bytes());
        let e = err(g);
        assert!(
            e.contains("tensor t: dims") && e.contains("overflows"),
            "{e}"
        );
        let mut g = good();
        g[54..62].copy_from_slice(&1000u64.to_le_bytes());
        let e = err(g);
        assert!(
            e.contains("tensor t: offset") && e.contains("past the end"),
            "{e}"
        );
        let mut g = good();
        g[66..74].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
        let e = err(g);
        assert!(
            e.contains("tensor t: offset") && e.contains("overflows"),
            "{e}"
        );
        let mut g = good();
        g[66..74].copy_from_slice(&8u64.to_le_bytes());
        assert!(err(g).contains("not aligned to 32"));
        let mut g = good();
        g[62..66].copy_from_slice(&4u32.to_le_bytes());
        assert!(err(g).contains("unknown ggml type id 4"));
        let mut g = good();
        g[50..54].copy_from_slice(&5u32.to_le_bytes());
        assert!(err(g).contains("n_dims: 5"));
    }
}
