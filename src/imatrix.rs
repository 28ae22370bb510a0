//! llama.cpp importance matrices (`llama-imatrix` output) as llama-quantize reads them: the GGUF
//! format (`NAME.in_sum2` / `NAME.counts` tensors, normalised per expert by the counts) and the
//! legacy `.dat` format (sums scaled by the call count). Values are the per-column weights that
//! the k-quant and legacy quantizers' weighted searches use.

use crate::gguf::{GgmlType, GgufFile, MetaValue};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded importance matrix.
#[derive(Clone, Debug)]
pub struct Imatrix {
    /// The file it came from, as given.
    pub path: PathBuf,
    /// Per tensor name: `ne0 × n_expert` weights.
    pub entries: BTreeMap<String, Vec<f32>>,
    /// Datasets it was computed on.
    pub datasets: Vec<String>,
    /// Chunks it was computed on (0 when unknown).
    pub chunk_count: u32,
}

impl Imatrix {
    /// Loads a GGUF or legacy imatrix file.
    pub fn load(path: &Path) -> Result<Imatrix> {
        let shown = path.display();
        let mut magic = [0u8; 4];
        let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
        if meta.is_dir() {
            bail!("{shown}: is a directory, not an imatrix file");
        }
        let n = {
            use std::io::Read;
            let mut f =
                std::fs::File::open(path).with_context(|| format!("{shown}: cannot read"))?;
            f.read(&mut magic)
                .with_context(|| format!("{shown}: cannot read"))?
        };
        if n == 4 && &magic == crate::gguf::MAGIC {
            Self::from_gguf(GgufFile::open(path)?)
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("{shown}: cannot read"))?;
            Self::from_legacy(path, &bytes)
        }
    }

    /// Reads an imatrix from a GGUF file already opened (and validated).
    pub fn from_gguf(f: GgufFile) -> Result<Imatrix> {
        let path = f.path.clone();
        let err = |m: String| anyhow!("{}: {m}", path.display());
        let datasets = match f.metadata.get("imatrix.datasets") {
            Some(MetaValue::Array(crate::gguf::MetaArray::Str(v))) => v
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            _ => return Err(err("missing imatrix metadata (imatrix.datasets)".into())),
        };
        let chunk_count = f
            .metadata
            .get("imatrix.chunk_count")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| err("missing imatrix metadata (imatrix.chunk_count)".into()))?;
        let chunk_count = u32::try_from(chunk_count)
            .map_err(|_| err(format!("imatrix.chunk_count {chunk_count} is too large")))?;
        f.metadata
            .get("imatrix.chunk_size")
            .ok_or_else(|| err("missing imatrix metadata (imatrix.chunk_size)".into()))?;
        let mut pairs: BTreeMap<String, (Option<usize>, Option<usize>)> = BTreeMap::new();
        for (i, t) in f.tensors.iter().enumerate() {
            if let Some(n) = t.name.strip_suffix(".in_sum2") {
                pairs.entry(n.to_string()).or_default().0 = Some(i);
            } else if let Some(n) = t.name.strip_suffix(".counts") {
                pairs.entry(n.to_string()).or_default().1 = Some(i);
            }
        }
        let floats = |i: usize| -> Result<Vec<f32>> {
            let t = &f.tensors[i];
            if t.ty != GgmlType::F32 {
                return Err(err(format!(
                    "tensor {}: type is {}, must be F32",
                    t.name, t.ty
                )));
            }
            Ok(f.tensor_data(t)
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect())
        };
        let mut entries = BTreeMap::new();
        for (name, p) in pairs {
            let (Some(s), Some(c)) = p else {
                return Err(err(format!(
                    "tensor {name}: has {} but no {}",
                    if p.0.is_some() { "in_sum2" } else { "counts" },
                    if p.0.is_some() { "counts" } else { "in_sum2" }
                )));
            };
            let sums = floats(s)?;
            let counts: Vec<f32> = floats(c)?.iter().map(|x| x.round() as i64 as f32).collect();
            if counts.is_empty() || sums.len() % counts.len() != 0 {
                return Err(err(format!(
                    "tensor {name}: {} sums for {} counts",
                    sums.len(),
                    counts.len()
                )));
            }
            let ne0 = sums.len() / counts.len();
            let mut v = vec![0f32; sums.len()];
            for (j, &count) in counts.iter().enumerate() {
                for i in 0..ne0 {
                    v[j * ne0 + i] = if count > 0.0 {
                        sums[j * ne0 + i] / count
                    } else {
                        1.0
                    };
                }
            }
            entries.insert(name, v);
        }
        if entries.is_empty() {
            return Err(err("no data in imatrix file".into()));
        }
        Self::checked(Imatrix {
            path,
            entries,
            datasets,
            chunk_count,
        })
    }

    fn checked(m: Imatrix) -> Result<Imatrix> {
        for (name, v) in &m.entries {
            if v.iter().any(|x| !x.is_finite()) {
                bail!(
                    "{}: imatrix entry {name} contains non-finite values",
                    m.path.display()
                );
            }
        }
        Ok(m)
    }

    /// Reads the legacy `.dat` format from its bytes (`path` names it in errors): an i32 entry
    /// count; per entry an i32 name length, the name, an i32 call count, an i32 value count and
    /// that many f32 sums; then optionally an i32 chunk count and an i32-length dataset name.
    pub fn from_legacy(path: &Path, b: &[u8]) -> Result<Imatrix> {
        let fail = |m: String| anyhow!("{}: not an imatrix file: {m}", path.display());
        let mut pos = 0usize;
        // Every length is checked against the bytes left before it is used.
        let take = |pos: &mut usize, n: usize, what: &dyn Fn() -> String| -> Result<&[u8]> {
            let s = pos
                .checked_add(n)
                .and_then(|end| b.get(*pos..end))
                .ok_or_else(|| {
                    fail(format!(
                        "{}: needs {n} bytes at byte {}, the file has {}",
                        what(),
                        *pos,
                        b.len()
                    ))
                })?;
            *pos += n;
            Ok(s)
        };
        let i32_at = |pos: &mut usize, what: &dyn Fn() -> String| -> Result<i32> {
            Ok(i32::from_le_bytes(take(pos, 4, what)?.try_into().unwrap()))
        };
        let n = i32_at(&mut pos, &|| "entry count".into())?;
        if n < 1 {
            return Err(fail(format!("entry count {n}")));
        }
        let mut entries = BTreeMap::new();
        for k in 0..n {
            let len = i32_at(&mut pos, &|| format!("entry {k}: name length"))?;
            let len = usize::try_from(len)
                .map_err(|_| fail(format!("entry {k}: name length {len} is negative")))?;
            let name = take(&mut pos, len, &|| format!("entry {k}: name"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let ncall = i32_at(&mut pos, &|| format!("entry {name}: call count"))?;
            let nval = i32_at(&mut pos, &|| format!("entry {name}: value count"))?;
            if nval < 1 {
                return Err(fail(format!("entry {name}: value count {nval}")));
            }
            let raw = take(&mut pos, 4 * nval as usize, &|| {
                format!("entry {name}: values")
            })?;
            let sums = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
            let v: Vec<f32> = if ncall > 0 {
                sums.map(|x| x / ncall as f32).collect()
            } else {
                sums.collect()
            };
            if entries.insert(name.clone(), v).is_some() {
                return Err(fail(format!("entry {name} appears twice")));
            }
        }
        let mut chunk_count = 0;
        let mut datasets = Vec::new();
        // Optional trailer, read as llama.cpp does: whatever fits.
        if let Ok(c) = i32_at(&mut pos, &String::new) {
            chunk_count = c.max(0) as u32;
            if let Ok(len) = i32_at(&mut pos, &String::new) {
                if let Ok(len @ 1..) = usize::try_from(len) {
                    if let Ok(d) = take(&mut pos, len, &String::new) {
                        datasets.push(String::from_utf8_lossy(d).into_owned());
                    }
                }
            }
        }
        Self::checked(Imatrix {
            path: path.to_path_buf(),
            entries,
            datasets,
            chunk_count,
        })
    }

    /// The `quantize.imatrix.*` keys llama-quantize adds to the file it writes.
    pub fn metadata(&self) -> Vec<(String, MetaValue)> {
        let mut file = self.path.to_string_lossy().into_owned();
        truncate_bytes(&mut file, 127);
        let mut kv = vec![("quantize.imatrix.file".to_string(), MetaValue::Str(file))];
        if let Some(d) = self.datasets.first() {
            let mut d = d.clone();
            truncate_bytes(&mut d, 127);
            kv.push(("quantize.imatrix.dataset".into(), MetaValue::Str(d)));
        }
        kv.push((
            "quantize.imatrix.entries_count".into(),
            MetaValue::U32(self.entries.len() as u32),
        ));
        if self.chunk_count > 0 {
            kv.push((
                "quantize.imatrix.chunks_count".into(),
                MetaValue::U32(self.chunk_count),
            ));
        }
        kv
    }
}

fn truncate_bytes(s: &mut String, n: usize) {
    if s.len() > n {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    //! The legacy format's fields (runs under Miri); both formats against llama-quantize are in
    //! tests/llama_quantize_equality.rs.
    use super::*;

    fn legacy(entries: &[(&str, i32, &[f32])], trailer: Option<(i32, &str)>) -> Vec<u8> {
        let mut b = (entries.len() as i32).to_le_bytes().to_vec();
        for (name, ncall, v) in entries {
            b.extend_from_slice(&(name.len() as i32).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&ncall.to_le_bytes());
            b.extend_from_slice(&(v.len() as i32).to_le_bytes());
            for x in *v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        if let Some((c, d)) = trailer {
            b.extend_from_slice(&c.to_le_bytes());
            b.extend_from_slice(&(d.len() as i32).to_le_bytes());
            b.extend_from_slice(d.as_bytes());
        }
        b
    }

    fn read(b: &[u8]) -> Result<Imatrix> {
        Imatrix::from_legacy(Path::new("m.dat"), b)
    }

    #[test]
    fn legacy_reads_and_scales() {
        let b = legacy(
            &[("a", 2, &[2.0, 4.0]), ("b", 0, &[3.0])],
            Some((7, "wiki")),
        );
        let m = read(&b).unwrap();
        assert_eq!(m.entries["a"], [1.0, 2.0]);
        assert_eq!(m.entries["b"], [3.0]);
        assert_eq!(
            (m.chunk_count, m.datasets.clone()),
            (7, vec!["wiki".to_string()])
        );
    }

    #[test]
    fn legacy_bad_fields() {
        let good = legacy(&[("a", 1, &[1.0])], None);
        for n in 0..good.len() {
            let e = read(&good[..n]).unwrap_err().to_string();
            assert!(e.starts_with("m.dat: not an imatrix file"), "{e}");
        }
        let mut neg = good.clone();
        neg[4..8].copy_from_slice(&(-1i32).to_le_bytes());
        let e = read(&neg).unwrap_err().to_string();
        assert!(e.contains("name length -1 is negative"), "{e}");
        let mut big = good.clone();
        big[13..17].copy_from_slice(&i32::MAX.to_le_bytes());
        let e = read(&big).unwrap_err().to_string();
        assert!(e.contains("entry a: values"), "{e}");
        let e = read(&legacy(&[("a", 1, &[1.0]), ("a", 1, &[2.0])], None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry a appears twice"), "{e}");
        let e = read(&legacy(&[("a", 1, &[f32::NAN])], None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
        let e = read(&(-3i32).to_le_bytes()).unwrap_err().to_string();
        assert!(e.contains("entry count -3"), "{e}");
    }
}
