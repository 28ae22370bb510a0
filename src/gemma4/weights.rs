//! One view of a Gemma 4 model's tensors, whether they sit in a GGUF file (any type the kernels
//! know) or in a Hugging Face checkpoint (F32 / F16 / BF16 safetensors): every tensor is found by
//! its GGUF name, with its ggml type, its dimensions in ggml order (`dims[0]` is the row length)
//! and its bytes, which stay memory-mapped.
//!
//! A checkpoint tensor's bytes are already what the converter would write for an unquantized
//! GGUF (row-major, PyTorch's `[out, in]` is ggml's `[in, out]`), so both sources feed the same
//! kernels.

use super::config::TextConfig;
use super::hparams::Hparams;
use super::names::{map_name, Mapped};
use crate::gguf::GgufFile;
use crate::safetensors::Checkpoint;
use anyhow::{anyhow, bail, Context, Result};
use gq_kernels::GgmlType;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the weights come from.
pub enum Source {
    /// A GGUF file.
    Gguf(GgufFile),
    /// A checkpoint directory.
    Checkpoint(Checkpoint),
}

/// A tensor found by its GGUF name.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// ggml type.
    pub ty: GgmlType,
    /// Dimensions, ggml order.
    pub dims: Vec<usize>,
    /// Index into the source's tensor list.
    pub(crate) index: usize,
}

/// The weights of one model: the mapped source and a GGUF-name index into it.
pub struct WeightFile {
    /// The file or directory it was opened from.
    pub path: PathBuf,
    /// The mapped source.
    pub source: Source,
    /// The TurboQuant parameters (`gq.tq.*`) of a GGUF file with TurboQuant tensors.
    pub tq: Option<gq_kernels::TqParams>,
    by_name: HashMap<String, TensorEntry>,
}

fn qtype_of_dtype(d: Dtype) -> Option<GgmlType> {
    match d {
        Dtype::F32 => Some(GgmlType::F32),
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
}

impl WeightFile {
    /// Opens a GGUF file, or a checkpoint directory (its `config.json` and safetensors).
    /// Returns the weights and the hyper-parameters read from the same source.
    pub fn open(path: &Path) -> Result<(WeightFile, Hparams)> {
        if path.is_dir() {
            Self::open_checkpoint(path)
        } else {
            Self::open_gguf(path)
        }
    }

    fn open_gguf(path: &Path) -> Result<(WeightFile, Hparams)> {
        Self::from_gguf(GgufFile::open(path)?)
    }

    /// The weights of a GGUF file already opened (and validated), and its hyper-parameters.
    pub fn from_gguf(g: GgufFile) -> Result<(WeightFile, Hparams)> {
        let path = g.path.clone();
        let path = path.as_path();
        let mut by_name = HashMap::new();
        for (i, t) in g.tensors.iter().enumerate() {
            let ty = t.ty;
            if gq_kernels::format(ty).is_none() {
                bail!(
                    "{}: tensor {} has type {}, which gq's kernels do not compute with",
                    path.display(),
                    t.name,
                    t.ty
                );
            }
            by_name.insert(
                t.name.clone(),
                TensorEntry {
                    ty,
                    dims: t.dims.iter().map(|&d| d as usize).collect(),
                    index: i,
                },
            );
        }
        let tq = crate::gguf::turboquant::read_params(&g.metadata, g.tensors.iter().map(|t| t.ty))
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let wf = WeightFile {
            path: path.to_path_buf(),
            source: Source::Gguf(g),
            tq,
            by_name,
        };
        let freqs = match wf.get("rope_freqs.weight") {
            Some(_) => Some(wf.vector("rope_freqs.weight")?),
            None => None,
        };
        let Source::Gguf(g) = &wf.source else {
            unreachable!()
        };
        let hp = Hparams::from_gguf(&g.metadata, freqs)
            .with_context(|| format!("{}", path.display()))?;
        Ok((wf, hp))
    }

    fn open_checkpoint(dir: &Path) -> Result<(WeightFile, Hparams)> {
        let cfg = TextConfig::load(dir)?;
        let hp = Hparams::from_config(&cfg)
            .with_context(|| format!("{}", dir.join("config.json").display()))?;
        let ck = Checkpoint::open(dir)?;
        super::check::check_tensors(&cfg, &ck)?;
        let mut by_name = HashMap::new();
        for (i, t) in ck.tensors.iter().enumerate() {
            let gguf_name = match map_name(&t.name) {
                Some(Mapped::Text(n)) => n,
                Some(Mapped::Tower) => continue,
                None => bail!(
                    "{}: tensor {} is not a Gemma 4 tensor gq knows",
                    dir.display(),
                    t.name
                ),
            };
            let ty = qtype_of_dtype(t.dtype).ok_or_else(|| {
                anyhow!(
                    "{}: tensor {} has dtype {:?} (the runner reads F32, F16 and BF16)",
                    ck.shards[t.shard].path.display(),
                    t.name,
                    t.dtype
                )
            })?;
            let dims = t.shape.iter().rev().copied().collect();
            by_name.insert(gguf_name, TensorEntry { ty, dims, index: i });
        }
        Ok((
            WeightFile {
                path: dir.to_path_buf(),
                source: Source::Checkpoint(ck),
                tq: None,
                by_name,
            },
            hp,
        ))
    }

    /// The tensor with this GGUF name.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name)
    }

    /// The tensor, or an error naming it and the file.
    pub fn require(&self, name: &str) -> Result<&TensorEntry> {
        self.get(name)
            .ok_or_else(|| anyhow!("{}: no tensor {name}", self.path.display()))
    }

    /// All bytes of a tensor.
    pub fn bytes(&self, t: &TensorEntry) -> &[u8] {
        match &self.source {
            Source::Gguf(g) => g.tensor_data(&g.tensors[t.index]),
            Source::Checkpoint(c) => c.bytes(&c.tensors[t.index]),
        }
    }

    /// A whole tensor as f32 (norm weights, scales: small tensors only).
    pub fn vector(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.require(name)?;
        let n: usize = t.dims.iter().product();
        let mut out = vec![0f32; n];
        let b = self.bytes(t);
        if Some(b.len()) != t.ty.row_bytes(n) {
            bail!(
                "{}: tensor {name}: unexpected byte size",
                self.path.display()
            );
        }
        if t.ty.is_turboquant() {
            bail!(
                "{}: tensor {name} is {}; gq expects it in a float type",
                self.path.display(),
                t.ty
            );
        }
        gq_kernels::kernels().dequantize_row(t.ty, b, &mut out);
        Ok(out)
    }

    /// The activation format the kernels need for weights of type `ty`: the file's rotation
    /// for TurboQuant weights, `float_act` otherwise.
    pub fn act_for(&self, ty: GgmlType, float_act: gq_kernels::FloatAct) -> gq_kernels::FloatAct {
        match (ty.is_turboquant(), self.tq) {
            (true, Some(p)) => gq_kernels::FloatAct::Rotated(p),
            _ => float_act,
        }
    }

    /// Dequantizes one row (`dst.len()` elements) of a tensor of type `ty` (TurboQuant rows
    /// with the file's rotation).
    pub fn dequantize_row(&self, ty: GgmlType, src: &[u8], dst: &mut [f32]) {
        match (ty.is_turboquant(), &self.tq) {
            (true, Some(p)) => gq_kernels::formats::tq::dequantize_row(ty, p, src, dst),
            _ => gq_kernels::kernels().dequantize_row(ty, src, dst),
        }
    }

    /// Bytes and element count of the text model's tensors (bits per weight = 8 · bytes / n).
    pub fn data_bytes_and_weights(&self) -> (u64, u64) {
        self.by_name.values().fold((0, 0), |(b, n), t| {
            (
                b + self.bytes(t).len() as u64,
                n + t.dims.iter().product::<usize>() as u64,
            )
        })
    }

    /// Size of the files the weights are read from (the GGUF, or the checkpoint's shards).
    pub fn file_bytes(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        match &self.source {
            Source::Gguf(g) => len(&g.path),
            Source::Checkpoint(c) => c.shards.iter().map(|s| len(&s.path)).sum(),
        }
    }

    /// Whether the weights come from a checkpoint directory.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self.source, Source::Checkpoint(_))
    }
}
