//! Memory-mapped Hugging Face safetensors checkpoints, single-file or sharded with an index.
//!
//! Every shard's header is parsed and validated completely before any tensor is touched: the
//! JSON header, each tensor's dtype, shape and byte range (inside the file, matching
//! shape × dtype, no overlaps), and the index's claims about which shard holds which tensor.
//! Errors name the file and the tensor. The header is parsed here rather than with the
//! `safetensors` crate's `SafeTensors::deserialize` because that reports an unknown dtype or a
//! bad offset as a generic deserialization error without the tensor's name; the crate's `Dtype`
//! is still the vocabulary of dtypes.

use memmap2::Mmap;
use safetensors::Dtype;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What was wrong with a checkpoint. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory has neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("{0}: no model.safetensors or model.safetensors.index.json")]
    NoWeights(PathBuf),
    /// The safetensors header is malformed.
    #[error("{path}: corrupt safetensors header: {msg}")]
    Header {
        /// The shard.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// The file is shorter than its header says.
    #[error("{path}: truncated: {msg}")]
    Truncated {
        /// The shard.
        path: PathBuf,
        /// What was missing.
        msg: String,
    },
    /// One tensor's entry is wrong.
    #[error("{path}: tensor {tensor}: {msg}")]
    Tensor {
        /// The shard.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What was wrong.
        msg: String,
    },
    /// The index names a shard that is not there.
    #[error("{index}: missing shard {shard} (named for tensor {tensor})")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The missing shard's file name.
        shard: String,
        /// A tensor the index places in it.
        tensor: String,
    },
    /// The index is malformed or disagrees with the shards.
    #[error("{path}: {msg}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
}

/// A shard's bytes: mapped, or owned (checkpoints built in memory by tests and fuzzers).
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

/// One mapped shard.
pub struct Shard {
    /// The shard's path.
    pub path: PathBuf,
    map: Bytes,
    data_start: usize,
}

/// Where one tensor lives.
#[derive(Clone, Debug)]
pub struct TensorRef {
    /// The tensor's name in the checkpoint.
    pub name: String,
    /// Index into [`Checkpoint::shards`].
    pub shard: usize,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// Byte range within the shard's data section.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
}

impl TensorRef {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A checkpoint's weights: all shards mapped and validated.
pub struct Checkpoint {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Mapped shards, sorted by file name.
    pub shards: Vec<Shard>,
    /// Tensors in the order the converter visits them: shard by shard (sorted file names), and
    /// within a shard by name.
    pub tensors: Vec<TensorRef>,
    by_name: BTreeMap<String, usize>,
}

/// Element size in bytes of a safetensors dtype.
pub fn dtype_size(d: Dtype) -> usize {
    d.bitsize().div_ceil(8)
}

fn parse_dtype(s: &str) -> Option<Dtype> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

impl Checkpoint {
    /// Opens `dir`: `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |path: &Path, e| CheckpointError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let (shard_names, weight_map) =
            if exists(&index_path).map_err(|e| io(&index_path, e))? {
                let text = crate::json::read_limited(&index_path, crate::json::LARGE_LIMIT)
                    .map_err(|e| CheckpointError::Index {
                        path: index_path.clone(),
                        msg: format!("{e:#}")
                            .trim_start_matches(&format!("{}: ", index_path.display()))
                            .to_string(),
                    })?;
                let (names, map) = parse_index(&index_path, &text)?;
                (names, Some(map))
            } else if exists(&single).map_err(|e| io(&single, e))? {
                (vec!["model.safetensors".to_string()], None)
            } else {
                return Err(CheckpointError::NoWeights(dir));
            };
        let mut shards = Vec::new();
        for name in &shard_names {
            let path = dir.join(name);
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let tensor = weight_map
                        .as_ref()
                        .and_then(|m| m.iter().find(|(_, s)| *s == name))
                        .map(|(t, _)| t.clone());
                    return Err(CheckpointError::MissingShard {
                        index: index_path,
                        shard: name.clone(),
                        tensor: tensor.unwrap_or_default(),
                    });
                }
                Err(e) => return Err(io(&path, e)),
                Ok(m) if m.is_dir() => {
                    return Err(io(
                        &path,
                        std::io::Error::other("is a directory, not a file"),
                    ))
                }
                Ok(_) => {}
            }
            shards.push((path.clone(), map_file(&path)?));
        }
        Self::assemble(dir, &index_path, weight_map.as_ref(), shards)
    }

    /// Builds a checkpoint from bytes in memory: an optional index (JSON text) and the shards
    /// the index names (or one `model.safetensors`), each with its file name. Checks exactly
    /// what [`Checkpoint::open`] checks; for tests and fuzzing.
    pub fn from_memory(
        dir: impl AsRef<Path>,
        index: Option<&[u8]>,
        shards: Vec<(String, Vec<u8>)>,
    ) -> Result<Checkpoint, CheckpointError> {
        let dir = dir.as_ref().to_path_buf();
        let index_path = dir.join("model.safetensors.index.json");
        let (names, weight_map) = match index {
            Some(text) => {
                let (n, m) = parse_index(&index_path, text)?;
                (n, Some(m))
            }
            None => (vec!["model.safetensors".to_string()], None),
        };
        let mut by_name: BTreeMap<String, Vec<u8>> = shards.into_iter().collect();
        let mut list = Vec::new();
        for name in &names {
            let bytes = by_name
                .remove(name)
                .ok_or_else(|| CheckpointError::MissingShard {
                    index: index_path.clone(),
                    shard: name.clone(),
                    tensor: String::new(),
                })?;
            list.push((dir.join(name), Bytes::Owned(bytes)));
        }
        Self::assemble(dir, &index_path, weight_map.as_ref(), list)
    }

    fn assemble(
        dir: PathBuf,
        index_path: &Path,
        weight_map: Option<&BTreeMap<String, String>>,
        files: Vec<(PathBuf, Bytes)>,
    ) -> Result<Checkpoint, CheckpointError> {
        let shard_names: Vec<String> = files
            .iter()
            .map(|(p, _)| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let mut shards = Vec::new();
        let mut tensors = Vec::new();
        for (i, (path, map)) in files.into_iter().enumerate() {
            let (data_start, mut list) = parse_header(&path, &map, i)?;
            list.sort_by(|a, b| a.name.cmp(&b.name));
            tensors.extend(list);
            shards.push(Shard {
                path,
                map,
                data_start,
            });
        }
        let mut by_name = BTreeMap::new();
        for (i, t) in tensors.iter().enumerate() {
            if let Some(j) = by_name.insert(t.name.clone(), i) {
                return Err(CheckpointError::Tensor {
                    path: shards[t.shard].path.clone(),
                    tensor: t.name.clone(),
                    msg: format!(
                        "appears in more than one shard (also in {})",
                        shards[tensors[j].shard].path.display()
                    ),
                });
            }
        }
        if let Some(map) = weight_map {
            let index_err = |msg: String| CheckpointError::Index {
                path: index_path.to_path_buf(),
                msg,
            };
            for (tensor, shard) in map {
                match by_name.get(tensor) {
                    None => {
                        return Err(index_err(format!(
                            "tensor {tensor} is listed for {shard} but {shard} does not contain it"
                        )))
                    }
                    Some(&i) if shard_names[tensors[i].shard] != *shard => {
                        return Err(index_err(format!(
                            "tensor {tensor} is listed for {shard} but is in {}",
                            shard_names[tensors[i].shard]
                        )))
                    }
                    _ => {}
                }
            }
            if let Some(t) = tensors.iter().find(|t| !map.contains_key(&t.name)) {
                return Err(index_err(format!(
                    "tensor {} (in {}) is not in the weight map",
                    t.name, shard_names[t.shard]
                )));
            }
        }
        Ok(Checkpoint {
            dir,
            shards,
            tensors,
            by_name,
        })
    }

    /// The tensor with this checkpoint name.
    pub fn get(&self, name: &str) -> Option<&TensorRef> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor.
    pub fn bytes(&self, t: &TensorRef) -> &[u8] {
        let s = &self.shards[t.shard];
        &s.map[s.data_start + t.start..s.data_start + t.end]
    }

    /// Total bytes of all tensors.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| (t.end - t.start) as u64).sum()
    }

    /// Drops this process's mapping of elements `[first, first + n)` of a tensor once they have
    /// been read, so resident memory stays bounded however large the checkpoint is. The pages stay
    /// in the page cache; reading them again simply faults them back in.
    pub fn release(&self, t: &TensorRef, first: usize, n: usize) {
        let s = &self.shards[t.shard];
        let es = dtype_size(t.dtype);
        let begin = s.data_start + t.start + first * es;
        let end = begin + n * es;
        let aligned = begin & !4095;
        if let Bytes::Map(m) = &s.map {
            // SAFETY: the map is a read-only, file-backed private mapping that gq never writes:
            // MADV_DONTNEED only discards page-table entries, which refault from the file.
            let _ = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, aligned, end - aligned)
            };
        }
    }

    /// Converts elements `[first, first + out.len())` of a float tensor to f32.
    pub fn read_f32(&self, t: &TensorRef, first: usize, out: &mut [f32]) -> Result<(), String> {
        let b = self.bytes(t);
        let es = dtype_size(t.dtype);
        let src = &b[first * es..(first + out.len()) * es];
        match t.dtype {
            Dtype::F32 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Dtype::F16 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            Dtype::BF16 => {
                for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
                }
            }
            d => {
                return Err(format!(
                    "dtype {d:?} cannot be converted (gq reads F32, F16 and BF16)"
                ))
            }
        }
        Ok(())
    }
}

/// Whether `path` exists (following links); errors other than "not found" (a symbolic link
/// loop, a permission problem) are reported rather than taken for absence.
fn exists(path: &Path) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn map_file(path: &Path) -> Result<Bytes, CheckpointError> {
    let io = |e| CheckpointError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::other("is a directory, not a file")));
    }
    if meta.len() == 0 {
        return Ok(Bytes::Owned(Vec::new())); // an empty map is an error; report the size
    }
    // SAFETY: read-only map of a file gq does not modify while it is mapped.
    Ok(Bytes::Map(unsafe { Mmap::map(&file) }.map_err(io)?))
}

/// Parses `model.safetensors.index.json`: the sorted, distinct shard names and the weight map.
pub fn parse_index(
    path: &Path,
    text: &[u8],
) -> Result<(Vec<String>, BTreeMap<String, String>), CheckpointError> {
    let bad = |msg: String| CheckpointError::Index {
        path: path.to_path_buf(),
        msg,
    };
    let v = crate::json::parse(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let mut weight_map = BTreeMap::new();
    for (k, s) in map {
        let s = s
            .as_str()
            .ok_or_else(|| bad(format!("weight_map entry {k} is not a file name")))?;
        if s.is_empty() || s.contains(['/', '\\', '\0']) || s == ".." || s == "." {
            return Err(bad(format!(
                "weight_map entry {k} names a path outside the directory: {s:?}"
            )));
        }
        weight_map.insert(k.clone(), s.to_string());
    }
    if weight_map.is_empty() {
        return Err(bad("weight_map lists no tensors".into()));
    }
    let mut names: Vec<String> = weight_map.values().cloned().collect();
    names.sort();
    names.dedup();
    Ok((names, weight_map))
}

/// Size limit of one safetensors JSON header (the reference implementation's is 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Validates one shard's header and returns the data section's start and the tensors.
fn parse_header(
    path: &Path,
    map: &[u8],
    index: usize,
) -> Result<(usize, Vec<TensorRef>), CheckpointError> {
    let header_err = |msg: String| CheckpointError::Header {
        path: path.to_path_buf(),
        msg,
    };
    if map.len() < 8 {
        return Err(CheckpointError::Truncated {
            path: path.to_path_buf(),
            msg: format!("{} bytes, too short for a header length", map.len()),
        });
    }
    let n = u64::from_le_bytes(map[..8].try_into().unwrap());
    if n > MAX_HEADER_BYTES {
        return Err(header_err(format!(
            "header length {n} is implausibly large (limit {MAX_HEADER_BYTES})"
        )));
    }
    let n = n as usize;
    if 8 + n > map.len() {
        return Err(CheckpointError::Truncated {
            path: path.to_path_buf(),
            msg: format!("header needs {} bytes, file has {}", 8 + n, map.len()),
        });
    }
    let header =
        crate::json::parse(&map[8..8 + n]).map_err(|e| header_err(format!("invalid JSON: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| header_err("header is not a JSON object".into()))?;
    let data_len = map.len() - 8 - n;
    let mut list = Vec::new();
    for (name, entry) in obj {
        if name == "__metadata__" {
            continue;
        }
        let terr = |msg: String| CheckpointError::Tensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            msg,
        };
        let dt = entry
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| terr("dtype: missing or not a string".into()))?;
        let dtype = parse_dtype(dt).ok_or_else(|| terr(format!("unknown dtype {dt:?}")))?;
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| terr("shape: missing or not a list".into()))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| terr("shape is not a list of non-negative integers".into()))?;
        let offs: Vec<usize> = entry
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .ok_or_else(|| terr("data_offsets is not [start, end]".into()))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| terr("data_offsets are not non-negative integers".into()))?;
        let (start, end) = (offs[0], offs[1]);
        if end < start {
            return Err(terr(format!(
                "data_offsets [{start}, {end}] end before they start"
            )));
        }
        let n_el = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| terr(format!("shape {shape:?}: element count overflows")))?;
        let want = n_el
            .checked_mul(dtype.bitsize())
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| terr(format!("shape {shape:?}: byte size overflows")))?;
        if end - start != want {
            return Err(terr(format!(
                "data_offsets [{start}, {end}] hold {} bytes but shape {shape:?} of {dt} needs {want}",
                end - start
            )));
        }
        if end > data_len {
            return Err(if start <= data_len {
                CheckpointError::Truncated {
                    path: path.to_path_buf(),
                    msg: format!(
                        "tensor {name} ends at byte {end} of the data section, which has only {data_len}"
                    ),
                }
            } else {
                terr(format!(
                    "data_offsets [{start}, {end}] out of bounds (data section is {data_len} bytes)"
                ))
            });
        }
        list.push(TensorRef {
            name: name.clone(),
            shard: index,
            dtype,
            shape,
            start,
            end,
        });
    }
    let mut by_start: Vec<&TensorRef> = list.iter().filter(|t| t.end > t.start).collect();
    by_start.sort_by_key(|t| t.start);
    for w in by_start.windows(2) {
        if w[1].start < w[0].end {
            return Err(CheckpointError::Tensor {
                path: path.to_path_buf(),
                tensor: w[1].name.clone(),
                msg: format!(
                    "data_offsets [{}, {}] overlap tensor {} [{}, {}]",
                    w[1].start, w[1].end, w[0].name, w[0].start, w[0].end
                ),
            });
        }
    }
    Ok((8 + n, list))
}

#[cfg(test)]
mod tests {
    //! Headers built in memory (these run under Miri, which cannot map files); the checkpoint
    //! catalogue through the CLI is in tests/bad_input.rs and tests/bad_files.rs.
    use super::*;

    fn shard(header: &str, data: usize) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.resize(b.len() + data, 0);
        b
    }

    fn open(header: &str, data: usize) -> Result<Checkpoint, String> {
        Checkpoint::from_memory(
            "ck",
            None,
            vec![("model.safetensors".into(), shard(header, data))],
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_and_converts() {
        let c = open(
            r#"{"__metadata__":{"a":"b"},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},
                "v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
        )
        .unwrap();
        assert_eq!(c.tensors.len(), 2);
        let w = c.get("w").unwrap();
        let mut out = [1f32; 2];
        c.read_f32(w, 0, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
        assert_eq!(c.total_bytes(), 8);
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#,
                3,
                "truncated",
            ),
            (
                r#"{"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,4]}}"#,
                4,
                "unknown dtype",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[-2],"data_offsets":[0,4]}}"#,
                4,
                "non-negative",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[4,0]}}"#,
                4,
                "end before",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                4,
                "overflows",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,6]}}"#,
                6,
                "needs 4",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[9,13]}}"#,
                4,
                "out of bounds",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"v":{"dtype":"BF16","shape":[2],"data_offsets":[2,6]}}"#,
                6,
                "overlap",
            ),
            (
                r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#,
                4,
                "duplicate key",
            ),
            (r#"[1]"#, 0, "not a JSON object"),
            (r#"{"w":{"shape":[2],"data_offsets":[0,4]}}"#, 4, "dtype"),
        ];
        for (h, data, want) in cases {
            let e = open(h, data)
                .err()
                .unwrap_or_else(|| panic!("accepted {h}"));
            assert!(
                e.contains(want) && e.contains("model.safetensors"),
                "{h}: {e}"
            );
        }
        let e = Checkpoint::from_memory("ck", None, vec![("model.safetensors".into(), vec![1])])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("too short"), "{e}");
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.push(b'{');
        let e = Checkpoint::from_memory("ck", None, vec![("model.safetensors".into(), huge)])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("implausibly large"), "{e}");
    }

    #[test]
    fn index_checks() {
        let s = shard(
            r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#,
            4,
        );
        let idx = |m: &str| format!(r#"{{"weight_map":{m}}}"#);
        let open = |i: &str| {
            Checkpoint::from_memory("ck", Some(i.as_bytes()), vec![("a.st".into(), s.clone())])
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(open(&idx(r#"{"w":"a.st"}"#)), None);
        for (m, want) in [
            (r#"{"w":"../a.st"}"#, "outside the directory"),
            (r#"{"w":"b.st"}"#, "missing shard b.st"),
            (r#"{"w":"a.st","x":"a.st"}"#, "tensor x is listed for a.st"),
            (r#"{}"#, "lists no tensors"),
            (r#"{"w":7}"#, "not a file name"),
        ] {
            let e = open(&idx(m)).unwrap_or_else(|| panic!("accepted {m}"));
            assert!(e.contains(want), "{m}: {e}");
        }
        // A shard holding a tensor the index does not list.
        let two = shard(
            r#"{"v":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"w":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#,
            8,
        );
        let e = Checkpoint::from_memory(
            "ck",
            Some(idx(r#"{"w":"a.st"}"#).as_bytes()),
            vec![("a.st".into(), two)],
        )
        .err()
        .map(|e| e.to_string())
        .expect("accepted an unlisted tensor");
        assert!(
            e.contains("tensor v (in a.st) is not in the weight map"),
            "{e}"
        );
    }
}
