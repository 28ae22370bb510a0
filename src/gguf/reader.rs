use super::{GgmlType, MetaArray, MetaValue, Metadata, DEFAULT_ALIGNMENT, MAGIC};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

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
    map: Mmap,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (need {n} more)", self.pos))?;
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
    fn len(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(format!(
                "length {n} at byte {} runs past end of file",
                self.pos - 8
            ));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, String> {
        let at = self.pos;
        String::from_utf8(self.bytes()?).map_err(|_| format!("string at byte {at} is not UTF-8"))
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
            t => return Err(format!("unknown metadata value type {t}")),
        })
    }

    fn array(&mut self) -> Result<MetaArray, String> {
        let ty = self.u32()?;
        let n = self.u64()?;
        // Every element takes at least one byte: a count larger than the rest is corrupt.
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(format!("array of {n} elements runs past end of file"));
        }
        let n = n as usize;
        macro_rules! many {
            ($v:ident, $e:expr) => {{
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push($e);
                }
                MetaArray::$v(out)
            }};
        }
        Ok(match ty {
            0 => MetaArray::U8(self.take(n)?.to_vec()),
            1 => many!(I8, self.u8()? as i8),
            2 => many!(U16, self.u16()?),
            3 => many!(I16, self.u16()? as i16),
            4 => many!(U32, self.u32()?),
            5 => many!(I32, self.u32()? as i32),
            6 => many!(F32, f32::from_bits(self.u32()?)),
            7 => many!(Bool, self.u8()? != 0),
            8 => many!(Str, self.bytes()?),
            10 => many!(U64, self.u64()?),
            11 => many!(I64, self.u64()? as i64),
            12 => many!(F64, f64::from_bits(self.u64()?)),
            t => return Err(format!("unsupported array element type {t}")),
        })
    }
}

impl GgufFile {
    /// Maps and validates a GGUF file: header, metadata, tensor infos, offsets and sizes.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", path.display()))?;
        // SAFETY: the map is read-only; gq never writes to a file it has mapped.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| anyhow::anyhow!("{}: cannot map: {e}", path.display()))?;
        Self::parse(path.clone(), map).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn parse(path: PathBuf, map: Mmap) -> Result<GgufFile, String> {
        let mut c = Cursor { buf: &map, pos: 0 };
        if c.take(4).map_err(|_| "not a GGUF file (too short)")? != MAGIC {
            return Err("not a GGUF file (bad magic)".into());
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("unsupported GGUF version {version}"));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        let mut metadata = Metadata::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let v = c
                .value(ty)
                .map_err(|e| format!("metadata key {key}: {e}"))?;
            if metadata.get(&key).is_some() {
                return Err(format!("duplicate metadata key {key}"));
            }
            metadata.set(key, v);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or("general.alignment is not a power of two")?,
        };
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let nd = c.u32()?;
            if nd == 0 || nd > 4 {
                return Err(format!("tensor {name}: {nd} dimensions"));
            }
            let mut dims = Vec::new();
            for _ in 0..nd {
                dims.push(c.u64()?);
            }
            let tid = c.u32()?;
            let ty = GgmlType::from_id(tid)
                .ok_or_else(|| format!("tensor {name}: unknown ggml type id {tid}"))?;
            let offset = c.u64()?;
            let n: u64 = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| format!("tensor {name}: element count overflows"))?;
            let row = usize::try_from(dims[0])
                .ok()
                .and_then(|d| ty.row_bytes(d))
                .ok_or_else(|| {
                    format!(
                        "tensor {name}: row of {} is not a multiple of {}'s block",
                        dims[0], ty
                    )
                })?;
            let n_bytes = n
                .checked_div(dims[0])
                .unwrap_or(0)
                .checked_mul(row as u64)
                .ok_or_else(|| format!("tensor {name}: byte size overflows"))?;
            if offset % alignment != 0 {
                return Err(format!(
                    "tensor {name}: offset {offset} not aligned to {alignment}"
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
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = map.len() as u64;
        for t in &tensors {
            let end = data_start + t.offset + t.n_bytes;
            if end > file_len {
                return Err(format!(
                    "tensor {}: data [{}, {end}) runs past end of file ({file_len} bytes)",
                    t.name,
                    data_start + t.offset
                ));
            }
        }
        Ok(GgufFile {
            path,
            version,
            metadata,
            tensors,
            data_start,
            map,
        })
    }

    /// The raw bytes of a tensor.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let s = (self.data_start + t.offset) as usize;
        &self.map[s..s + t.n_bytes as usize]
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
