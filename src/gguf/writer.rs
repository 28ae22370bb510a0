use super::{GgmlType, MetaArray, MetaValue, Metadata, DEFAULT_ALIGNMENT, MAGIC, VERSION};
use std::io::{self, Write};

/// A tensor as it will be laid out in the output: name, ggml-order dims, type and data offset.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    /// GGUF tensor name.
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section (aligned).
    pub offset: u64,
}

impl PlannedTensor {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data (without padding).
    pub fn n_bytes(&self) -> u64 {
        let rows = self.n_elements() / self.dims[0].max(1);
        let row = self
            .ty
            .row_bytes(self.dims[0] as usize)
            .expect("row length checked by the plan");
        rows * row as u64
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Assigns aligned data offsets to tensors in the given order; returns the data section size.
pub fn layout_tensors(tensors: &mut [PlannedTensor], alignment: u64) -> u64 {
    let mut off = 0;
    for t in tensors.iter_mut() {
        t.offset = off;
        off = align(off + t.n_bytes(), alignment);
    }
    off
}

/// Streams a GGUF v3 file: header, metadata and tensor infos first (all offsets are known from
/// the plan), then each tensor's bytes in plan order, in as many pieces as the caller likes.
pub struct GgufWriter<W: Write> {
    out: W,
    tensors: Vec<PlannedTensor>,
    alignment: u64,
    /// Bytes written so far.
    pos: u64,
    data_start: u64,
    /// Index of the tensor being written and bytes of it written so far.
    current: usize,
    current_written: u64,
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header, metadata and tensor infos. `tensors` must have offsets from
    /// [`layout_tensors`] with the same alignment as `general.alignment` (32 when absent).
    ///
    /// The plan is checked first (alignment a power of two; names unique; 1 to 4 dims whose
    /// rows are whole blocks and whose sizes do not overflow; offsets aligned, increasing and
    /// not overlapping): a bad plan is an `InvalidInput` error, never a file that no reader
    /// accepts.
    pub fn new(out: W, meta: &Metadata, tensors: Vec<PlannedTensor>) -> io::Result<Self> {
        let alignment = match meta.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v.as_u64().unwrap_or(0),
        };
        check_plan(&tensors, alignment)
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let mut w = GgufWriter {
            out,
            tensors,
            alignment,
            pos: 0,
            data_start: 0,
            current: 0,
            current_written: 0,
        };
        let mut head = Vec::with_capacity(1 << 16);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(w.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        for (k, v) in meta.iter() {
            put_str(&mut head, k.as_bytes());
            head.extend_from_slice(&v.type_id().to_le_bytes());
            put_value(&mut head, v);
        }
        for t in &w.tensors {
            put_str(&mut head, t.name.as_bytes());
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&t.offset.to_le_bytes());
        }
        let padded = align(head.len() as u64, alignment);
        head.resize(padded as usize, 0);
        w.out.write_all(&head)?;
        w.pos = padded;
        w.data_start = padded;
        Ok(w)
    }

    /// Total file size once every tensor is written.
    pub fn expected_len(&self) -> u64 {
        let data = self
            .tensors
            .last()
            .map(|t| align(t.offset + t.n_bytes(), self.alignment))
            .unwrap_or(0);
        self.data_start + data
    }

    /// Appends bytes of the current tensor; moves to the next tensor when this one is complete.
    /// Tensors of zero bytes need no call (an empty `bytes` writes nothing).
    pub fn write_tensor_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        // Skip zero-byte tensors: they never get data.
        while self.current_written == 0
            && self
                .tensors
                .get(self.current)
                .is_some_and(|t| t.n_bytes() == 0)
        {
            self.current += 1;
        }
        let t = self.tensors.get(self.current).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "all tensors already written")
        })?;
        let (t_bytes, t_offset) = (t.n_bytes(), t.offset);
        let need = t_bytes - self.current_written;
        if bytes.len() as u64 > need {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tensor {}: {} bytes given, {} left",
                    t.name,
                    bytes.len(),
                    need
                ),
            ));
        }
        if self.current_written == 0 {
            let target = self.data_start + t_offset;
            debug_assert!(target >= self.pos);
            self.pad_to(target)?;
        }
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        self.current_written += bytes.len() as u64;
        if self.current_written == t_bytes {
            let end = align(self.pos, self.alignment);
            self.pad_to(end)?;
            self.current += 1;
            self.current_written = 0;
        }
        Ok(())
    }

    fn pad_to(&mut self, target: u64) -> io::Result<()> {
        const ZEROS: [u8; 64] = [0; 64];
        while self.pos < target {
            let n = ((target - self.pos) as usize).min(ZEROS.len());
            self.out.write_all(&ZEROS[..n])?;
            self.pos += n as u64;
        }
        Ok(())
    }

    /// Checks that every tensor was written, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // Zero-byte tensors at the end never receive a write call.
        while let Some(t) = self.tensors.get(self.current) {
            if t.n_bytes() != 0 || self.current_written != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("tensor {} was not completely written", t.name),
                ));
            }
            self.current += 1;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn check_plan(tensors: &[PlannedTensor], alignment: u64) -> Result<(), String> {
    if !alignment.is_power_of_two() {
        return Err(format!(
            "general.alignment {alignment} is not a power of two"
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut end = 0u64;
    for t in tensors {
        let bad = |m: String| Err(format!("tensor {}: {m}", t.name));
        if !names.insert(t.name.as_str()) {
            return bad("appears twice".into());
        }
        if t.dims.is_empty() || t.dims.len() > 4 {
            return bad(format!("{} dims", t.dims.len()));
        }
        let n = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let row = usize::try_from(t.dims[0])
            .ok()
            .and_then(|d| t.ty.row_bytes(d));
        let size = match (n, row) {
            (Some(n), Some(r)) if n <= i64::MAX as u64 => {
                (n / t.dims[0].max(1)).checked_mul(r as u64)
            }
            _ => None,
        };
        let Some(size) = size else {
            return bad(format!("dims {:?} are not whole {} rows", t.dims, t.ty));
        };
        if t.offset % alignment != 0 || t.offset < end {
            return bad(format!(
                "offset {} is not aligned after the previous tensor",
                t.offset
            ));
        }
        end = t
            .offset
            .checked_add(size)
            .ok_or_else(|| format!("tensor {}: offset overflows", t.name))?;
    }
    Ok(())
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s);
}

fn put_value(buf: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => buf.push(*x),
        MetaValue::I8(x) => buf.push(*x as u8),
        MetaValue::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => buf.push(*x as u8),
        MetaValue::Str(s) => put_str(buf, s.as_bytes()),
        MetaValue::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(a) => {
            buf.extend_from_slice(&a.elem_type_id().to_le_bytes());
            buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
            match a {
                MetaArray::U8(v) => buf.extend_from_slice(v),
                MetaArray::I8(v) => buf.extend(v.iter().map(|x| *x as u8)),
                MetaArray::U16(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::I16(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::U32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::I32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::F32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::Bool(v) => buf.extend(v.iter().map(|x| *x as u8)),
                MetaArray::Str(v) => v.iter().for_each(|s| put_str(buf, s)),
                MetaArray::U64(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::I64(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::F64(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    /// Fuzz finding (fuzz/regressions/gguf_roundtrip/zero-byte-tensor-before-data): a zero-byte
    /// tensor before others took the next tensor's bytes ("N bytes given, 0 left").
    #[test]
    fn zero_byte_tensors_anywhere() {
        let t = |name: &str, dims: Vec<u64>| PlannedTensor {
            name: name.into(),
            dims,
            ty: GgmlType::F32,
            offset: 0,
        };
        let mut ts = vec![
            t("a", vec![0]),
            t("b", vec![3]),
            t("c", vec![4, 0]),
            t("d", vec![2]),
        ];
        layout_tensors(&mut ts, 32);
        let mut w = GgufWriter::new(Vec::new(), &Metadata::new(), ts.clone()).unwrap();
        w.write_tensor_data(&[]).unwrap();
        w.write_tensor_data(&[1; 12]).unwrap();
        w.write_tensor_data(&[2; 8]).unwrap();
        let expected = w.expected_len();
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64, expected);
        let f = GgufFile::from_bytes("w.gguf", out).unwrap();
        assert_eq!(f.tensor_data(&f.tensors[1]), &[1; 12]);
        assert_eq!(f.tensor_data(&f.tensors[3]), &[2; 8]);
        assert!(f.tensor_data(&f.tensors[2]).is_empty());
    }

    #[test]
    fn bad_plans_are_refused() {
        let t = |name: &str, dims: Vec<u64>, ty, offset| PlannedTensor {
            name: name.into(),
            dims,
            ty,
            offset,
        };
        let m = Metadata::new();
        for (plan, want) in [
            (vec![t("a", vec![33], GgmlType::Q8_0, 0)], "whole"),
            (
                vec![t("a", vec![1 << 40, 1 << 40], GgmlType::F32, 0)],
                "whole",
            ),
            (vec![t("a", vec![], GgmlType::F32, 0)], "0 dims"),
            (
                vec![
                    t("a", vec![8], GgmlType::F32, 0),
                    t("a", vec![8], GgmlType::F32, 32),
                ],
                "twice",
            ),
            (
                vec![
                    t("a", vec![16], GgmlType::F32, 0),
                    t("b", vec![8], GgmlType::F32, 32),
                ],
                "not aligned after",
            ),
        ] {
            let e = GgufWriter::new(Vec::new(), &m, plan)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
