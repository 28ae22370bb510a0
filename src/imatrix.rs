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
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let m = if bytes.starts_with(crate::gguf::MAGIC) {
            Self::from_gguf(path)?
        } else {
            Self::from_legacy(path, &bytes)
                .map_err(|e| anyhow!("{}: not an imatrix file: {e}", path.display()))?
        };
        for (name, v) in &m.entries {
            if v.iter().any(|x| !x.is_finite()) {
                bail!(
                    "{}: imatrix entry {name} contains non-finite values",
                    path.display()
                );
            }
        }
        Ok(m)
    }

    fn from_gguf(path: &Path) -> Result<Imatrix> {
        let f = GgufFile::open(path)?;
        let err = |m: String| anyhow!("{}: {m}", path.display());
        let datasets = match f.metadata.get("imatrix.datasets") {
            Some(MetaValue::Array(crate::gguf::MetaArray::Str(v))) => v
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            _ => bail!(
                "{}: missing imatrix metadata (imatrix.datasets)",
                path.display()
            ),
        };
        let chunk_count = f
            .metadata
            .get("imatrix.chunk_count")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| err("missing imatrix metadata (imatrix.chunk_count)".into()))?
            as u32;
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
                bail!("{}: {} must be F32", path.display(), t.name);
            }
            Ok(f.tensor_data(t)
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect())
        };
        let mut entries = BTreeMap::new();
        for (name, p) in pairs {
            let (Some(s), Some(c)) = p else {
                bail!("{}: mismatched sums and counts for {name}", path.display());
            };
            let sums = floats(s)?;
            let counts: Vec<f32> = floats(c)?.iter().map(|x| x.round() as i64 as f32).collect();
            if counts.is_empty() || sums.len() % counts.len() != 0 {
                bail!(
                    "{}: {name}: {} sums for {} counts",
                    path.display(),
                    sums.len(),
                    counts.len()
                );
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
            bail!("{}: no data in imatrix file", path.display());
        }
        Ok(Imatrix {
            path: path.to_path_buf(),
            entries,
            datasets,
            chunk_count,
        })
    }

    fn from_legacy(path: &Path, b: &[u8]) -> Result<Imatrix, String> {
        let mut pos = 0usize;
        let i32_at = |pos: &mut usize| -> Result<i32, String> {
            let s = b.get(*pos..*pos + 4).ok_or("truncated")?;
            *pos += 4;
            Ok(i32::from_le_bytes(s.try_into().unwrap()))
        };
        let n = i32_at(&mut pos)?;
        if n < 1 {
            return Err("no entries".into());
        }
        let mut entries = BTreeMap::new();
        for k in 0..n {
            let len = i32_at(&mut pos)?;
            let name = b
                .get(pos..pos + len.max(0) as usize)
                .ok_or(format!("truncated name of entry {k}"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            pos += len as usize;
            let ncall = i32_at(&mut pos)?;
            let nval = i32_at(&mut pos)?;
            if nval < 1 {
                return Err(format!("entry {name}: {nval} values"));
            }
            let raw = b
                .get(pos..pos + 4 * nval as usize)
                .ok_or(format!("truncated data of {name}"))?;
            pos += 4 * nval as usize;
            let sums = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
            let v: Vec<f32> = if ncall > 0 {
                sums.map(|x| x / ncall as f32).collect()
            } else {
                sums.collect()
            };
            entries.insert(name, v);
        }
        let mut chunk_count = 0;
        let mut datasets = Vec::new();
        if pos < b.len() {
            if let Ok(c) = i32_at(&mut pos) {
                chunk_count = c.max(0) as u32;
                if let Ok(len) = i32_at(&mut pos) {
                    if len > 0 {
                        if let Some(d) = b.get(pos..pos + len as usize) {
                            datasets.push(String::from_utf8_lossy(d).into_owned());
                        }
                    }
                }
            }
        }
        Ok(Imatrix {
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
