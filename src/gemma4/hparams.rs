//! The hyper-parameters the forward pass needs, read from a checkpoint's `config.json`
//! ([`TextConfig`]) or from a GGUF's `gemma4.*` keys and `rope_freqs.weight`. Both readings give
//! the same values for the same model, so the two weight sources run the same computation.
//!
//! Shapes that the tensors themselves carry (heads per layer, FFN widths, expert counts) are taken
//! from the tensors when the model is loaded ([`super::model`]) and checked against these.

use super::config::TextConfig;
use crate::gguf::{MetaArray, MetaValue, Metadata};
use anyhow::{anyhow, bail, Result};

/// Largest width (model, head, per-layer embedding) a GGUF's keys may state: far above any
/// Gemma 4 (hidden 5376), low enough that nothing sized by it before the tensors are checked
/// can exhaust memory.
pub const MAX_WIDTH: usize = 1 << 20;

/// What the forward pass needs beyond the tensors' shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Hparams {
    /// Decoder layers.
    pub n_layer: usize,
    /// Model width.
    pub hidden: usize,
    /// Query heads (every layer).
    pub n_head: usize,
    /// KV heads per layer, when the source states them (GGUF `head_count_kv`); otherwise taken
    /// from `attn_k`'s shape.
    pub n_head_kv: Option<Vec<usize>>,
    /// Per layer: sliding-window attention.
    pub swa: Vec<bool>,
    /// Head size of sliding layers.
    pub head_dim_swa: usize,
    /// Head size of global layers.
    pub head_dim_full: usize,
    /// Sliding window: a query at position p sees keys at positions p-W+1 ..= p.
    pub sliding_window: usize,
    /// RoPE base of sliding layers.
    pub rope_base_swa: f32,
    /// RoPE base of global layers.
    pub rope_base_full: f32,
    /// Per rotated pair of a global head: the frequency divisor (1 for the rotated pairs,
    /// 1e30 for the pairs "proportional" RoPE leaves alone, as `rope_freqs.weight` states it).
    pub rope_freq_factors_full: Vec<f32>,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Final logit soft-capping.
    pub softcap: Option<f32>,
    /// Trailing layers that reuse an earlier layer's K/V.
    pub n_kv_shared: usize,
    /// Per-layer-embedding width (0: none).
    pub ple_dim: usize,
    /// Experts used per token (0: dense model).
    pub n_expert_used: usize,
}

impl Hparams {
    /// From a checkpoint's configuration.
    pub fn from_config(c: &TextConfig) -> Result<Hparams> {
        if c.rope_full.rope_type != "proportional" {
            bail!(
                "global layers use rope_type {:?}: gq's runner implements \"proportional\"",
                c.rope_full.rope_type
            );
        }
        if c.rope_swa.rope_type != "default" || c.rope_swa.partial_rotary_factor != 1.0 {
            bail!("sliding layers use a RoPE other than full-width \"default\"");
        }
        let pairs = c.head_dim_full / 2;
        // transformers: rope_angles = int(partial_rotary_factor * head_dim // 2)
        let rotated =
            ((c.rope_full.partial_rotary_factor * c.head_dim_full as f64) / 2.0).floor() as usize;
        if rotated > pairs {
            bail!("partial_rotary_factor > 1");
        }
        let factors = (0..pairs)
            .map(|i| if i < rotated { 1.0 } else { 1e30 })
            .collect();
        let n_expert_used = if c.raw.get("enable_moe_block").and_then(|v| v.as_bool()) == Some(true)
        {
            c.n_expert_used
                .ok_or_else(|| anyhow!("enable_moe_block without top_k_experts"))?
        } else {
            0
        };
        Ok(Hparams {
            n_layer: c.n_layer,
            hidden: c.hidden,
            n_head: c.n_head,
            n_head_kv: None,
            swa: c.swa_layers.clone(),
            head_dim_swa: c.head_dim_swa,
            head_dim_full: c.head_dim_full,
            sliding_window: c.sliding_window as usize,
            rope_base_swa: c.rope_swa.theta as f32,
            rope_base_full: c.rope_full.theta as f32,
            rope_freq_factors_full: factors,
            rms_eps: c.rms_norm_eps as f32,
            softcap: c.final_logit_softcapping.map(|x| x as f32),
            n_kv_shared: c.n_kv_shared,
            ple_dim: c.ple_dim,
            n_expert_used,
        })
    }

    /// From a GGUF's metadata (`general.architecture = gemma4`) and its `rope_freqs.weight`
    /// values.
    pub fn from_gguf(m: &Metadata, rope_freqs: Option<Vec<f32>>) -> Result<Hparams> {
        let arch = m.get("general.architecture").and_then(|v| v.as_str());
        if arch != Some("gemma4") {
            bail!("general.architecture is {arch:?}: gq's runner runs gemma4");
        }
        let key = |k: &str| format!("gemma4.{k}");
        let get = |k: &str| m.get(&key(k));
        let uint = |k: &str| -> Result<usize> {
            get(k)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| anyhow!("missing or non-integer key gemma4.{k}"))
        };
        let opt_uint = |k: &str| get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
        let float = |k: &str| -> Result<f32> {
            match get(k) {
                Some(MetaValue::F32(x)) => Ok(*x),
                Some(MetaValue::F64(x)) => Ok(*x as f32),
                _ => bail!("missing or non-float key gemma4.{k}"),
            }
        };
        let n_layer = uint("block_count")?;
        // Per-layer values are expanded to n_layer entries below: the count must be what the
        // sliding-window pattern (an array whose bytes exist) says, before anything is sized by
        // it.
        let swa = match get("attention.sliding_window_pattern") {
            Some(MetaValue::Array(MetaArray::Bool(v))) if v.len() == n_layer && n_layer > 0 => {
                v.clone()
            }
            _ => bail!("gemma4.attention.sliding_window_pattern is not {n_layer} bools"),
        };
        let per_layer = |k: &str| -> Result<Option<Vec<usize>>> {
            Ok(match get(k) {
                None => None,
                Some(MetaValue::Array(a)) => {
                    let v: Vec<usize> = match a {
                        MetaArray::I32(v) => v.iter().map(|&x| x.max(0) as usize).collect(),
                        MetaArray::U32(v) => v.iter().map(|&x| x as usize).collect(),
                        _ => bail!("gemma4.{k} is not an integer array"),
                    };
                    if v.len() != n_layer {
                        bail!("gemma4.{k} has {} entries for {n_layer} layers", v.len());
                    }
                    Some(v)
                }
                Some(v) => Some(vec![
                    v.as_u64()
                        .ok_or_else(|| anyhow!("gemma4.{k} is not an integer"))?
                        as usize;
                    n_layer
                ]),
            })
        };
        let n_head = match per_layer("attention.head_count")? {
            Some(v) if v.iter().all(|&h| h == v[0]) && !v.is_empty() => v[0],
            Some(_) => bail!("gemma4.attention.head_count differs between layers"),
            None => bail!("missing key gemma4.attention.head_count"),
        };
        let head_dim_full = uint("attention.key_length")?;
        let head_dim_swa = uint("attention.key_length_swa")?;
        if uint("attention.value_length")? != head_dim_full
            || uint("attention.value_length_swa")? != head_dim_swa
        {
            bail!("key and value head sizes differ (Gemma 4 has them equal)");
        }
        if opt_uint("rope.dimension_count").unwrap_or(head_dim_full) != head_dim_full
            || opt_uint("rope.dimension_count_swa").unwrap_or(head_dim_swa) != head_dim_swa
        {
            bail!("rope.dimension_count(_swa) differs from the head size (partial RoPE is expressed by rope_freqs.weight)");
        }
        // Sizes that become allocations are bounded before use (the tensors, checked against
        // them when the model is built, are the final word).
        for (k, v) in [
            ("attention.key_length", head_dim_full),
            ("attention.key_length_swa", head_dim_swa),
        ] {
            if v == 0 || v % 2 != 0 || v > MAX_WIDTH {
                bail!("gemma4.{k} {v} is not an even size from 2 to {MAX_WIDTH}");
            }
        }
        let pairs = head_dim_full / 2;
        let factors = rope_freqs.unwrap_or_else(|| vec![1.0; pairs]);
        if factors.len() != pairs {
            bail!(
                "rope_freqs.weight has {} entries; the global head size {head_dim_full} needs {pairs}",
                factors.len()
            );
        }
        let softcap = match get("final_logit_softcapping") {
            None => None,
            Some(_) => Some(float("final_logit_softcapping")?).filter(|&c| c != 0.0),
        };
        let hidden = uint("embedding_length")?;
        let n_kv_shared = opt_uint("attention.shared_kv_layers").unwrap_or(0);
        if n_kv_shared >= n_layer {
            bail!("gemma4.attention.shared_kv_layers {n_kv_shared} leaves none of the {n_layer} layers to compute K/V");
        }
        let ple_dim = opt_uint("embedding_length_per_layer_input").unwrap_or(0);
        let sliding_window = uint("attention.sliding_window")?;
        if sliding_window == 0 && swa.iter().any(|&s| s) {
            bail!("gemma4.attention.sliding_window is 0 while sliding-window layers exist (a window must hold at least the token itself)");
        }
        for (k, v) in [
            ("embedding_length", hidden),
            ("attention.head_count", n_head),
            ("embedding_length_per_layer_input", ple_dim),
        ] {
            if v > MAX_WIDTH {
                bail!("gemma4.{k} {v} is implausibly large (more than {MAX_WIDTH})");
            }
        }
        Ok(Hparams {
            n_layer,
            hidden,
            n_head,
            n_head_kv: per_layer("attention.head_count_kv")?,
            swa,
            head_dim_swa,
            head_dim_full,
            sliding_window,
            rope_base_swa: float("rope.freq_base_swa")?,
            rope_base_full: float("rope.freq_base")?,
            rope_freq_factors_full: factors,
            rms_eps: float("attention.layer_norm_rms_epsilon")?,
            softcap,
            n_kv_shared,
            ple_dim,
            n_expert_used: opt_uint("expert_used_count").unwrap_or(0),
        })
    }

    /// Index of the first layer that reuses another layer's K/V.
    pub fn first_kv_shared(&self) -> usize {
        self.n_layer - self.n_kv_shared
    }

    /// The layer whose K/V layer `il` attends to: itself, or for a KV-shared layer the last
    /// layer before the shared ones with the same attention type.
    pub fn kv_source(&self, il: usize) -> Option<usize> {
        let first = self.first_kv_shared();
        if il < first {
            return Some(il);
        }
        (0..first).rev().find(|&j| self.swa[j] == self.swa[il])
    }

    /// Head size of layer `il`.
    pub fn head_dim(&self, il: usize) -> usize {
        if self.swa[il] {
            self.head_dim_swa
        } else {
            self.head_dim_full
        }
    }
}
