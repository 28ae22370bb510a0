//! The conversion plan: from the config, tokenizer and tensor list alone (no weight data read),
//! every output tensor's name, shape, type, source and file offset, plus all metadata.

use super::config::TextConfig;
use super::metadata;
use super::mixture::{select_types, visit_key, ModelFacts, QuantOptions, Rule, TensorDesc};
use super::names::{map_name, Mapped};
use super::FileType;
use crate::gguf::{layout_tensors, GgmlType, Metadata, PlannedTensor, DEFAULT_ALIGNMENT};
use crate::imatrix::Imatrix;
use crate::safetensors::Checkpoint;
use crate::tokenizer::Vocab;
use anyhow::{bail, Result};
use std::sync::Arc;

/// Where an output tensor's values come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The first `n_elements` elements of a checkpoint tensor (fewer than all of them when
    /// embedding rows beyond the vocabulary are dropped).
    Checkpoint {
        /// Index into [`Checkpoint::tensors`].
        index: usize,
        /// Elements to read.
        n_elements: usize,
    },
    /// Values computed by gq (`rope_freqs`).
    Values(Vec<f32>),
}

/// One output tensor.
#[derive(Clone, Debug)]
pub struct PlanTensor {
    /// Name, dims, type and offset in the output.
    pub out: PlannedTensor,
    /// Where the values come from.
    pub source: Source,
    /// The checkpoint tensor's name, for messages.
    pub hf_name: String,
    /// Importance weights for the quantizer: `dims[0]` values per expert (`--imatrix`).
    pub importance: Option<std::sync::Arc<Vec<f32>>>,
    /// The rule that chose the tensor's type.
    pub rule: Rule,
}

impl Plan {
    /// The TurboQuant parameters of the file (`None` when no tensor is a TurboQuant type).
    pub fn tq_params(&self) -> Option<gq_kernels::TqParams> {
        crate::gguf::turboquant::read_params(&self.metadata, self.tensors.iter().map(|t| t.out.ty))
            .ok()
            .flatten()
    }
}

/// Everything `gq quantize` will write, decided before any weight is read.
pub struct Plan {
    /// GGUF metadata.
    pub metadata: Metadata,
    /// Output tensors in file order.
    pub tensors: Vec<PlanTensor>,
    /// Vision/audio tensors that are not converted.
    pub skipped: Vec<String>,
    /// The requested file type.
    pub file_type: FileType,
    /// Size of the data section.
    pub data_bytes: u64,
}

/// The converter's storage type for one tensor (`ModelBase.prepare_tensors`).
pub fn converter_type(gguf_name: &str, n_dims: usize, ne0: u64, ft: FileType) -> GgmlType {
    let is_router = gguf_name.starts_with("blk.") && gguf_name.ends_with(".ffn_gate_inp.weight");
    if n_dims <= 1
        || gguf_name.ends_with("_norm.weight")
        || is_router
        || !gguf_name.ends_with(".weight")
    {
        return GgmlType::F32;
    }
    let t = ft.base_type();
    if usize::try_from(ne0)
        .ok()
        .and_then(|n| t.row_bytes(n))
        .is_none()
    {
        // gguf-py raises QuantError and the converter falls back to F16.
        return GgmlType::F16;
    }
    t
}

/// The GGUF tensor names a checkpoint with this config must provide.
pub fn expected_tensors(c: &TextConfig) -> Vec<String> {
    let mut v = vec![
        "token_embd.weight".to_string(),
        "output_norm.weight".to_string(),
    ];
    if c.ple_dim > 0 {
        v.extend(
            [
                "per_layer_token_embd.weight",
                "per_layer_model_proj.weight",
                "per_layer_proj_norm.weight",
            ]
            .map(String::from),
        );
    }
    let moe = c
        .raw
        .get("enable_moe_block")
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    for il in 0..c.n_layer {
        let mut names = vec![
            "attn_norm",
            "post_attention_norm",
            "ffn_norm",
            "post_ffw_norm",
            "attn_q",
            "attn_output",
            "attn_q_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "layer_output_scale",
        ];
        if il < c.first_kv_shared() {
            names.extend(["attn_k", "attn_k_norm"]);
            if c.swa_layers[il] || !c.k_eq_v {
                names.push("attn_v");
            }
        }
        if c.ple_dim > 0 {
            names.extend(["inp_gate", "proj", "post_norm"]);
        }
        if moe {
            names.extend([
                "ffn_gate_up_exps",
                "ffn_down_exps",
                "ffn_gate_inp",
                "post_ffw_norm_1",
                "post_ffw_norm_2",
                "pre_ffw_norm_2",
            ]);
        }
        v.extend(names.into_iter().map(|n| format!("blk.{il}.{n}.weight")));
        if moe {
            v.extend([
                format!("blk.{il}.ffn_gate_inp.scale"),
                format!("blk.{il}.ffn_down_exps.scale"),
            ]);
        }
    }
    v
}

/// The importance weights llama-quantize would use for a tensor: the entry with its name, when
/// it has `ne0 × n_expert` values; a size mismatch is an error except for token embeddings.
fn importance_for(m: &Imatrix, t: &PlannedTensor) -> Result<Option<Arc<Vec<f32>>>> {
    let Some(v) = m.entries.get(&t.name) else {
        return Ok(None);
    };
    let want = t.dims[0] * t.dims.get(2).copied().unwrap_or(1);
    if v.len() as u64 == want {
        return Ok(Some(Arc::new(v.clone())));
    }
    if t.name == "token_embd.weight" || t.name == "per_layer_token_embd.weight" {
        return Ok(None);
    }
    bail!(
        "{}: imatrix size {} is different from tensor size {want} for {}",
        m.path.display(),
        v.len(),
        t.name
    )
}

/// The converter's output type matching the checkpoint's own float type: what llama-quantize's
/// input would be (`convert_hf_to_gguf.py --outtype bf16` for a BF16 checkpoint, and so on).
fn checkpoint_file_type(ckpt: &Checkpoint) -> FileType {
    let embd = ckpt
        .tensors
        .iter()
        .find(|t| t.name.ends_with("embed_tokens.weight"));
    match embd.map(|t| t.dtype) {
        Some(safetensors::Dtype::F32) => FileType::ALL_F32,
        Some(safetensors::Dtype::F16) => FileType::MOSTLY_F16,
        _ => FileType::MOSTLY_BF16,
    }
}

/// Builds the plan for converting `ckpt` to `file_type`: the converter's choices, then (for the
/// types llama-quantize makes) llama-quantize's choices on top of them.
pub fn build(
    ckpt: &Checkpoint,
    cfg: &TextConfig,
    vocab: &Vocab,
    file_type: FileType,
    name: &str,
    qopts: &QuantOptions,
) -> Result<Plan> {
    let conv_type = if file_type.is_converter_type() {
        file_type
    } else {
        checkpoint_file_type(ckpt)
    };
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();

    // rope_freqs comes first, as generate_extra_tensors() runs before the checkpoint's tensors.
    if cfg.rope_full.rope_type != "proportional" {
        bail!(
            "config.json: rope_parameters.full_attention.rope_type is {:?}; Gemma 4 uses \"proportional\"",
            cfg.rope_full.rope_type
        );
    }
    let n_pairs = cfg.head_dim_full / 2;
    let n_rot = cfg.n_rot_pairs_full().min(n_pairs);
    let freqs: Vec<f32> = (0..n_pairs)
        .map(|i| if i < n_rot { 1.0 } else { 1e30 })
        .collect();
    tensors.push(PlanTensor {
        out: PlannedTensor {
            name: "rope_freqs.weight".into(),
            dims: vec![n_pairs as u64],
            ty: GgmlType::F32,
            offset: 0,
        },
        source: Source::Values(freqs),
        hf_name: "(rope_freqs: generated)".into(),
        importance: None,
        rule: Rule::Converter,
    });

    for (index, t) in ckpt.tensors.iter().enumerate() {
        let gname = match map_name(&t.name) {
            Some(Mapped::Tower) => {
                skipped.push(t.name.clone());
                continue;
            }
            Some(Mapped::Text(g)) => g,
            None => bail!(
                "{}: tensor {} is not part of Gemma 4 as gq knows it",
                ckpt.shards[t.shard].path.display(),
                t.name
            ),
        };
        if !matches!(
            t.dtype,
            safetensors::Dtype::F32 | safetensors::Dtype::F16 | safetensors::Dtype::BF16
        ) {
            bail!(
                "{}: tensor {}: dtype {:?} cannot be converted (gq reads F32, F16 and BF16 checkpoints)",
                ckpt.shards[t.shard].path.display(),
                t.name,
                t.dtype
            );
        }
        if t.shape.is_empty() || t.shape.len() > 4 {
            bail!(
                "{}: tensor {}: {} dimensions",
                ckpt.shards[t.shard].path.display(),
                t.name,
                t.shape.len()
            );
        }
        if t.n_elements() == 0 {
            bail!(
                "{}: tensor {}: shape {:?} has no elements",
                ckpt.shards[t.shard].path.display(),
                t.name,
                t.shape
            );
        }
        let mut shape = t.shape.clone();
        if gname == "token_embd.weight" {
            shape[0] = shape[0].min(vocab.n_vocab_real);
        }
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let ty = converter_type(&gname, shape.len(), dims[0], conv_type);
        let rule =
            if ty == GgmlType::F16 && conv_type.base_type() != GgmlType::F16 && shape.len() > 1 {
                Rule::ConverterFallback
            } else {
                Rule::Converter
            };
        let n_elements = shape.iter().product();
        tensors.push(PlanTensor {
            out: PlannedTensor {
                name: gname,
                dims,
                ty,
                offset: 0,
            },
            source: Source::Checkpoint { index, n_elements },
            hf_name: t.name.clone(),
            importance: None,
            rule,
        });
    }
    for want in expected_tensors(cfg) {
        if !tensors.iter().any(|t| t.out.name == want) {
            bail!(
                "{}: checkpoint lacks the tensor that becomes {want} (config.json implies it)",
                ckpt.dir.display()
            );
        }
    }

    if !file_type.is_converter_type() {
        let descs: Vec<TensorDesc> = tensors
            .iter()
            .map(|t| TensorDesc {
                name: t.out.name.clone(),
                dims: t.out.dims.clone(),
                cur: t.out.ty,
            })
            .collect();
        let kv0 = if cfg.swa_layers[0] {
            cfg.n_head_kv_swa
        } else {
            cfg.n_head_kv_full.unwrap_or(cfg.n_head_kv_swa)
        };
        let facts = ModelFacts {
            n_layer: cfg.n_layer,
            n_gqa: cfg.n_head / kv0.max(1),
            n_expert: cfg.n_expert.unwrap_or(0),
        };
        let types = select_types(&descs, file_type, facts, qopts)?;
        for (t, (ty, rule)) in tensors.iter_mut().zip(types) {
            let requantized = t.out.ty != ty;
            t.out.ty = ty;
            t.rule = rule;
            if let (Some(m), true) = (&qopts.imatrix, requantized) {
                t.importance = importance_for(m, &t.out)?;
            }
        }
    }
    if !file_type.is_converter_type() {
        // llama-quantize writes tensors in the order it visits them (layer number, then name).
        tensors.sort_by(|a, b| visit_key(&a.out.name).cmp(&visit_key(&b.out.name)));
    }
    let mut outs: Vec<PlannedTensor> = tensors.iter().map(|t| t.out.clone()).collect();
    let data_bytes = layout_tensors(&mut outs, DEFAULT_ALIGNMENT);
    for (t, o) in tensors.iter_mut().zip(outs) {
        t.out = o;
    }

    // general.size_label from the written tensors, as gguf-py counts them.
    let (mut total, mut shared, mut expert, mut esum, mut n_exp_t) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for t in &tensors {
        let n = t.out.n_elements();
        total += n;
        if t.out.name.contains("_exps.") && t.out.dims.len() >= 3 {
            let e = t.out.dims[2];
            expert += n / e;
            esum += e;
            n_exp_t += 1;
        } else {
            shared += n;
        }
    }
    let expert_count = esum.checked_div(n_exp_t).unwrap_or(0);
    let label = (total > 0).then(|| metadata::size_label(total, shared, expert, expert_count));

    let mut meta = Metadata::new();
    metadata::general(&mut meta, name, label);
    metadata::hparams(&mut meta, cfg, file_type);
    meta.set(
        "general.quantization_version",
        crate::gguf::MetaValue::U32(2),
    );
    vocab.write(&mut meta);
    if !file_type.is_converter_type() {
        // llama-quantize copies the input's keys, then sets these two (ggml moves a key it sets
        // to the end).
        for key in ["general.quantization_version", "general.file_type"] {
            if let Some(v) = meta.remove(key) {
                meta.set(key, v);
            }
        }
    }
    if tensors.iter().any(|t| t.out.ty.is_turboquant()) {
        // gq's own types: the rotation parameters a decoder needs (docs/turboquant.md §2).
        let params = qopts
            .tq_seed
            .map_or_else(gq_kernels::TqParams::default, |seed| gq_kernels::TqParams {
                seed,
            });
        crate::gguf::turboquant::write_params(&mut meta, &params);
    } else if qopts.tq_seed.is_some() {
        bail!("--tq-seed applies to files with TurboQuant tensors (--type TQ…)");
    }
    if let Some(m) = &qopts.imatrix {
        if file_type.is_converter_type() {
            bail!(
                "--imatrix applies to the types llama-quantize makes, not to {}",
                file_type.name()
            );
        }
        for (k, v) in m.metadata() {
            meta.set(k, v);
        }
    }
    Ok(Plan {
        metadata: meta,
        tensors,
        skipped,
        file_type,
        data_bytes,
    })
}
