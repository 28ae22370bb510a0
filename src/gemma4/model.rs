//! A Gemma 4 text model ready to run: the hyper-parameters, every layer's matrices as views into
//! the memory-mapped weights, and the small vectors (norm weights, scales) as f32. Shapes are
//! checked against each other and against the hyper-parameters when the model is opened, so the
//! forward pass ([`super::forward`]) can index without surprises.

use super::hparams::Hparams;
use super::weights::{TensorEntry, WeightFile};
use anyhow::{anyhow, bail, Result};
use gq_kernels::{FloatAct, GgmlType};
use std::path::Path;

/// A row-major matrix of `rows` rows of `cols` elements inside the weight file (one expert of a
/// 3-D expert tensor is one matrix).
#[derive(Clone, Debug)]
pub struct Mat {
    /// Storage type.
    pub ty: GgmlType,
    /// Output rows.
    pub rows: usize,
    /// Row length (input width).
    pub cols: usize,
    entry: TensorEntry,
    offset: usize,
}

/// Attention weights of one layer.
pub struct Attention {
    /// Query projection, `n_head · head_dim` rows.
    pub q: Mat,
    /// Key projection (absent in KV-shared layers).
    pub k: Option<Mat>,
    /// Value projection (absent with `attention_k_eq_v` and in KV-shared layers).
    pub v: Option<Mat>,
    /// Output projection.
    pub o: Mat,
    /// Per-head query norm weight.
    pub q_norm: Vec<f32>,
    /// Per-head key norm weight (with `k`).
    pub k_norm: Option<Vec<f32>>,
    /// Head size.
    pub head_dim: usize,
    /// KV heads of the K/V this layer attends to.
    pub n_head_kv: usize,
    /// The layer whose K/V cache this layer reads (itself unless KV-shared).
    pub kv_source: usize,
}

/// The dense feed-forward block.
pub struct Mlp {
    /// Gate projection.
    pub gate: Mat,
    /// Up projection.
    pub up: Mat,
    /// Down projection.
    pub down: Mat,
}

/// The routed experts of an MoE layer.
pub struct Moe {
    /// Router projection (`n_expert` rows).
    pub router: Mat,
    /// Router input scale (`hidden`).
    pub router_scale: Vec<f32>,
    /// Per-expert output scale.
    pub expert_scale: Vec<f32>,
    /// Per expert: gate and up fused (`2 · n_ff_exp` rows; gate first).
    pub gate_up: Vec<Mat>,
    /// Per expert: down projection.
    pub down: Vec<Mat>,
    /// Norm before the experts.
    pub pre_norm: Vec<f32>,
    /// Norm after the dense MLP.
    pub post_norm_mlp: Vec<f32>,
    /// Norm after the experts.
    pub post_norm_experts: Vec<f32>,
}

/// The per-layer-embedding branch of one layer.
pub struct PleLayer {
    /// `hidden → ple` gate.
    pub gate: Mat,
    /// `ple → hidden` projection.
    pub proj: Mat,
    /// Norm after the projection.
    pub post_norm: Vec<f32>,
}

/// One decoder layer.
pub struct Layer {
    /// Norm before attention.
    pub attn_norm: Vec<f32>,
    /// Attention.
    pub attn: Attention,
    /// Norm after attention.
    pub post_attn_norm: Vec<f32>,
    /// Norm before the MLP.
    pub ffn_norm: Vec<f32>,
    /// Dense MLP.
    pub mlp: Mlp,
    /// Routed experts (MoE layers).
    pub moe: Option<Moe>,
    /// Norm after the feed-forward block.
    pub post_ffn_norm: Vec<f32>,
    /// Per-layer embeddings.
    pub ple: Option<PleLayer>,
    /// Output scale of the layer.
    pub scalar: f32,
}

/// Model-level per-layer-embedding tensors.
pub struct PleGlobal {
    /// Token table `[vocab, n_layer · ple]`.
    pub tok: Mat,
    /// `hidden → n_layer · ple` projection.
    pub model_proj: Mat,
    /// Norm of each projected slice.
    pub proj_norm: Vec<f32>,
}

/// A loaded model.
pub struct Model {
    /// The weights.
    pub file: WeightFile,
    /// Hyper-parameters.
    pub hp: Hparams,
    /// Token embedding (`[vocab, hidden]`).
    pub tok_embd: Mat,
    /// Output projection (the token embedding when tied).
    pub output: Mat,
    /// Final norm.
    pub output_norm: Vec<f32>,
    /// Per-layer embeddings.
    pub ple: Option<PleGlobal>,
    /// Layers.
    pub layers: Vec<Layer>,
    /// What BF16 weights are multiplied with: exact f32 activations ([`FloatAct::F32`], the
    /// default), or activations rounded to BF16 ([`FloatAct::Bf16`], what llama.cpp's CPU
    /// backend does). Other types are not affected.
    pub float_act: FloatAct,
}

impl Model {
    /// Opens a GGUF file or a checkpoint directory.
    pub fn open(path: &Path) -> Result<Model> {
        let (file, hp) = WeightFile::open(path)?;
        build(file, hp).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Builds the model from weights already opened (checks every shape against `hp`).
    pub fn from_weights(file: WeightFile, hp: Hparams) -> Result<Model> {
        let path = file.path.clone();
        build(file, hp).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Vocabulary size (rows of the output projection).
    pub fn n_vocab(&self) -> usize {
        self.output.rows
    }

    /// Rows of the token embedding (valid input ids are below this).
    pub fn n_embd_rows(&self) -> usize {
        self.tok_embd.rows
    }

    /// The bytes of a matrix.
    pub fn bytes(&self, m: &Mat) -> &[u8] {
        let len = m.ty.row_bytes(m.cols).expect("checked by mat()") * m.rows;
        &self.file.bytes(&m.entry)[m.offset..m.offset + len]
    }
}

fn mat(file: &WeightFile, name: &str, rows: usize, cols: usize) -> Result<Mat> {
    let t = file.require(name)?;
    if t.dims.len() != 2 || t.dims[0] != cols || t.dims[1] != rows {
        bail!(
            "tensor {name} has dims {:?}, expected [{cols}, {rows}]",
            t.dims
        );
    }
    if t.ty.row_bytes(cols).is_none() {
        bail!(
            "tensor {name}: rows of {cols} are not whole {} blocks",
            t.ty
        );
    }
    Ok(Mat {
        ty: t.ty,
        rows,
        cols,
        entry: t.clone(),
        offset: 0,
    })
}

/// A 2-D tensor with the expected row length and whatever row count it has.
fn mat_rows(file: &WeightFile, name: &str, cols: usize) -> Result<Mat> {
    let t = file.require(name)?;
    if t.dims.len() != 2 || t.dims[0] != cols {
        bail!("tensor {name} has dims {:?}, expected [{cols}, _]", t.dims);
    }
    mat(file, name, t.dims[1], cols)
}

/// The matrices of a 3-D expert tensor `[cols, rows, n_expert]`.
fn experts(file: &WeightFile, name: &str, cols: usize) -> Result<Vec<Mat>> {
    let t = file.require(name)?;
    if t.dims.len() != 3 || t.dims[0] != cols {
        bail!(
            "tensor {name} has dims {:?}, expected [{cols}, _, _]",
            t.dims
        );
    }
    let (rows, n) = (t.dims[1], t.dims[2]);
    if rows == 0 || n == 0 {
        bail!(
            "tensor {name} has dims {:?}: no experts or empty rows",
            t.dims
        );
    }
    let size = t.ty.row_bytes(cols).ok_or_else(|| {
        anyhow!(
            "tensor {name}: rows of {cols} are not whole {} blocks",
            t.ty
        )
    })? * rows;
    Ok((0..n)
        .map(|e| Mat {
            ty: t.ty,
            rows,
            cols,
            entry: t.clone(),
            offset: e * size,
        })
        .collect())
}

fn vec_n(file: &WeightFile, name: &str, n: usize) -> Result<Vec<f32>> {
    let v = file.vector(name)?;
    if v.len() != n {
        bail!("tensor {name} has {} elements, expected {n}", v.len());
    }
    Ok(v)
}

fn build(file: WeightFile, hp: Hparams) -> Result<Model> {
    let h = hp.hidden;
    if hp.n_layer == 0 || hp.swa.len() != hp.n_layer || hp.n_kv_shared >= hp.n_layer {
        bail!(
            "{} layers, {} layer types, {} KV-shared layers",
            hp.n_layer,
            hp.swa.len(),
            hp.n_kv_shared
        );
    }
    let tok_embd = mat_rows(&file, "token_embd.weight", h)?;
    let output = if file.get("output.weight").is_some() {
        mat_rows(&file, "output.weight", h)?
    } else {
        tok_embd.clone()
    };
    let output_norm = vec_n(&file, "output_norm.weight", h)?;
    let ple = if hp.ple_dim > 0 {
        let w = hp.n_layer.checked_mul(hp.ple_dim).ok_or_else(|| {
            anyhow!(
                "{} layers × {} per-layer width overflows",
                hp.n_layer,
                hp.ple_dim
            )
        })?;
        Some(PleGlobal {
            tok: mat_rows(&file, "per_layer_token_embd.weight", w)?,
            model_proj: mat(&file, "per_layer_model_proj.weight", w, h)?,
            proj_norm: vec_n(&file, "per_layer_proj_norm.weight", hp.ple_dim)?,
        })
    } else {
        None
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for il in 0..hp.n_layer {
        layers.push(build_layer(&file, &hp, il, &layers)?);
    }
    Ok(Model {
        file,
        hp,
        tok_embd,
        output,
        output_norm,
        ple,
        layers,
        float_act: FloatAct::F32,
    })
}

fn build_layer(file: &WeightFile, hp: &Hparams, il: usize, done: &[Layer]) -> Result<Layer> {
    let h = hp.hidden;
    let n = |s: &str| format!("blk.{il}.{s}");
    let hd = hp.head_dim(il);
    let q = mat(file, &n("attn_q.weight"), hp.n_head * hd, h)?;
    let o = mat(file, &n("attn_output.weight"), h, hp.n_head * hd)?;
    let q_norm = vec_n(file, &n("attn_q_norm.weight"), hd)?;
    let src = hp
        .kv_source(il)
        .ok_or_else(|| anyhow!("KV-shared layer {il} has no earlier layer of its type"))?;
    let (k, v, k_norm, n_head_kv) = if src == il {
        let k = mat_rows(file, &n("attn_k.weight"), h)?;
        if k.rows == 0 || !k.rows.is_multiple_of(hd) {
            bail!(
                "blk.{il}.attn_k.weight: {} rows is not a multiple of the head size {hd}",
                k.rows
            );
        }
        let n_kv = k.rows / hd;
        if !hp.n_head.is_multiple_of(n_kv) {
            bail!("layer {il}: {} query heads for {n_kv} KV heads", hp.n_head);
        }
        let v = match file.get(&n("attn_v.weight")) {
            Some(_) => Some(mat(file, &n("attn_v.weight"), k.rows, h)?),
            None => None,
        };
        let k_norm = vec_n(file, &n("attn_k_norm.weight"), hd)?;
        (Some(k), v, Some(k_norm), n_kv)
    } else {
        let s = &done[src].attn;
        if s.head_dim != hd {
            bail!("layer {il} shares layer {src}'s K/V but has another head size");
        }
        (None, None, None, s.n_head_kv)
    };
    if let Some(kv) = &hp.n_head_kv {
        if kv[il] != n_head_kv {
            bail!(
                "layer {il}: head_count_kv says {} KV heads, attn_k has {n_head_kv}",
                kv[il]
            );
        }
    }
    let attn = Attention {
        q,
        k,
        v,
        o,
        q_norm,
        k_norm,
        head_dim: hd,
        n_head_kv,
        kv_source: src,
    };
    let gate = mat_rows(file, &n("ffn_gate.weight"), h)?;
    let n_ff = gate.rows;
    let mlp = Mlp {
        gate,
        up: mat(file, &n("ffn_up.weight"), n_ff, h)?,
        down: mat(file, &n("ffn_down.weight"), h, n_ff)?,
    };
    let moe = if file.get(&n("ffn_gate_inp.weight")).is_some() {
        if hp.n_expert_used == 0 {
            bail!("layer {il} has a router but no experts-used count");
        }
        let router = mat_rows(file, &n("ffn_gate_inp.weight"), h)?;
        let n_exp = router.rows;
        let gate_up = experts(file, &n("ffn_gate_up_exps.weight"), h)?;
        let down = experts(file, &n("ffn_down_exps.weight"), gate_up[0].rows / 2)?;
        if gate_up.len() != n_exp || down.len() != n_exp || down[0].rows != h {
            bail!("layer {il}: expert tensors disagree with the router's {n_exp} experts");
        }
        if hp.n_expert_used > n_exp {
            bail!("{} experts used of {n_exp}", hp.n_expert_used);
        }
        Some(Moe {
            router,
            router_scale: vec_n(file, &n("ffn_gate_inp.scale"), h)?,
            expert_scale: vec_n(file, &n("ffn_down_exps.scale"), n_exp)?,
            gate_up,
            down,
            pre_norm: vec_n(file, &n("pre_ffw_norm_2.weight"), h)?,
            post_norm_mlp: vec_n(file, &n("post_ffw_norm_1.weight"), h)?,
            post_norm_experts: vec_n(file, &n("post_ffw_norm_2.weight"), h)?,
        })
    } else {
        None
    };
    let ple = if hp.ple_dim > 0 {
        Some(PleLayer {
            gate: mat(file, &n("inp_gate.weight"), hp.ple_dim, h)?,
            proj: mat(file, &n("proj.weight"), h, hp.ple_dim)?,
            post_norm: vec_n(file, &n("post_norm.weight"), h)?,
        })
    } else {
        None
    };
    let scalar = match file.get(&n("layer_output_scale.weight")) {
        Some(_) => vec_n(file, &n("layer_output_scale.weight"), 1)?[0],
        None => 1.0,
    };
    Ok(Layer {
        attn_norm: vec_n(file, &n("attn_norm.weight"), h)?,
        attn,
        post_attn_norm: vec_n(file, &n("post_attention_norm.weight"), h)?,
        ffn_norm: vec_n(file, &n("ffn_norm.weight"), h)?,
        mlp,
        moe,
        post_ffn_norm: vec_n(file, &n("post_ffw_norm.weight"), h)?,
        ple,
        scalar,
    })
}
