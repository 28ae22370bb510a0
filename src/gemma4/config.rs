//! `config.json` → the Gemma 4 text configuration, read the way llama.cpp's converter reads it
//! (a `text_config` is merged over the top level; `per_layer_config` supplies the global layers'
//! head size and kv heads when `global_head_dim` / `num_global_key_value_heads` are absent).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The checkpoint architectures gq converts.
pub const ARCHITECTURES: [&str; 2] = ["Gemma4ForCausalLM", "Gemma4ForConditionalGeneration"];

/// RoPE parameters of one layer type.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// `rope_type` ("default", "proportional").
    pub rope_type: String,
    /// Base frequency.
    pub theta: f64,
    /// Fraction of the head that is rotated.
    pub partial_rotary_factor: f64,
}

/// The Gemma 4 text model's hyper-parameters.
#[derive(Clone, Debug)]
pub struct TextConfig {
    /// `architectures[0]`.
    pub architecture: String,
    /// The merged key/value view (`{**config, **config.text_config}`).
    pub raw: Map<String, Value>,
    /// Number of decoder layers.
    pub n_layer: usize,
    /// Model width.
    pub hidden: usize,
    /// Dense FFN width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// KV heads of sliding layers.
    pub n_head_kv_swa: usize,
    /// KV heads of global layers, when set.
    pub n_head_kv_full: Option<usize>,
    /// Head size of sliding layers.
    pub head_dim_swa: usize,
    /// Head size of global layers.
    pub head_dim_full: usize,
    /// Per layer: true for sliding-window attention.
    pub swa_layers: Vec<bool>,
    /// Sliding window length.
    pub sliding_window: u64,
    /// RoPE of global layers.
    pub rope_full: Rope,
    /// RoPE of sliding layers.
    pub rope_swa: Rope,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Maximum context length.
    pub context_length: u64,
    /// Final logit soft-capping, when set (and non-zero).
    pub final_logit_softcapping: Option<f64>,
    /// Number of trailing layers that reuse earlier layers' K/V.
    pub n_kv_shared: usize,
    /// Per-layer-embedding width (0 = none).
    pub ple_dim: usize,
    /// Double-width MLP in KV-shared layers.
    pub double_wide_mlp: bool,
    /// Number of experts (MoE models).
    pub n_expert: Option<usize>,
    /// Experts used per token.
    pub n_expert_used: Option<usize>,
    /// Expert FFN width.
    pub expert_ff: Option<usize>,
    /// Vocabulary rows of the embedding.
    pub vocab_size: usize,
    /// `attention_k_eq_v`.
    pub k_eq_v: bool,
}

fn get_usize(raw: &Map<String, Value>, key: &str) -> Result<usize> {
    raw.get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| anyhow!("missing or non-integer key {key:?}"))
}

fn opt_usize(raw: &Map<String, Value>, key: &str) -> Option<usize> {
    raw.get(key).and_then(|v| v.as_u64()).map(|v| v as usize)
}

fn rope(v: Option<&Value>, name: &str) -> Result<Rope> {
    let v = v.ok_or_else(|| anyhow!("rope_parameters has no {name:?} entry"))?;
    Ok(Rope {
        rope_type: v
            .get("rope_type")
            .and_then(|t| t.as_str())
            .unwrap_or("default")
            .to_string(),
        theta: v
            .get("rope_theta")
            .and_then(|t| t.as_f64())
            .ok_or_else(|| anyhow!("rope_parameters.{name} has no rope_theta"))?,
        partial_rotary_factor: v
            .get("partial_rotary_factor")
            .and_then(|t| t.as_f64())
            .unwrap_or(1.0),
    })
}

/// Finds a key of the first global layer in `per_layer_config`, as the converter does.
fn from_per_layer(raw: &Map<String, Value>, layer_types: &[String], key: &str) -> Option<usize> {
    let plc = raw.get("per_layer_config")?.as_object()?;
    plc.iter().find_map(|(idx, cfg)| {
        let i: usize = idx.parse().ok()?;
        (layer_types.get(i)? == "full_attention").then_some(())?;
        cfg.get(key)?.as_u64().map(|v| v as usize)
    })
}

impl TextConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<TextConfig> {
        let path = dir.join("config.json");
        let v = crate::json::read(&path, crate::json::SMALL_LIMIT)?;
        Self::from_json(&v).with_context(|| format!("{}", path.display()))
    }

    /// Builds the configuration from a parsed `config.json`.
    pub fn from_json(v: &Value) -> Result<TextConfig> {
        let top = v.as_object().ok_or_else(|| anyhow!("not a JSON object"))?;
        let architecture = top
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .ok_or_else(|| anyhow!("no \"architectures\" entry"))?
            .to_string();
        if !ARCHITECTURES.contains(&architecture.as_str()) {
            bail!(
                "unknown architecture {architecture:?}: gq converts {}",
                ARCHITECTURES.join(" and ")
            );
        }
        let mut raw = top.clone();
        if let Some(tc) = top.get("text_config").and_then(|t| t.as_object()) {
            for (k, v) in tc {
                raw.insert(k.clone(), v.clone());
            }
        }
        let n_layer = get_usize(&raw, "num_hidden_layers")?;
        let layer_types: Vec<String> = raw
            .get("layer_types")
            .and_then(|l| l.as_array())
            .ok_or_else(|| anyhow!("missing key \"layer_types\""))?
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("\"layer_types\" is not a list of strings"))?;
        if layer_types.len() != n_layer {
            bail!(
                "layer_types has {} entries for {n_layer} layers",
                layer_types.len()
            );
        }
        for t in &layer_types {
            if t != "sliding_attention" && t != "full_attention" {
                bail!("unknown layer type {t:?}");
            }
        }
        let head_dim_swa = get_usize(&raw, "head_dim")?;
        let head_dim_full = opt_usize(&raw, "global_head_dim")
            .or_else(|| from_per_layer(&raw, &layer_types, "head_dim"))
            .ok_or_else(|| anyhow!("no global_head_dim and no head_dim in per_layer_config"))?;
        let n_head_kv_full = opt_usize(&raw, "num_global_key_value_heads")
            .or_else(|| from_per_layer(&raw, &layer_types, "num_key_value_heads"));
        let rp = raw
            .get("rope_parameters")
            .ok_or_else(|| anyhow!("missing key \"rope_parameters\""))?;
        let rope_full = rope(rp.get("full_attention"), "full_attention")?;
        let rope_swa = rope(rp.get("sliding_attention"), "sliding_attention")?;
        let rms_norm_eps = raw
            .get("rms_norm_eps")
            .and_then(|x| x.as_f64())
            .unwrap_or(1e-6);
        let cfg = TextConfig {
            architecture,
            n_layer,
            hidden: get_usize(&raw, "hidden_size")?,
            n_ff: get_usize(&raw, "intermediate_size")?,
            n_head: get_usize(&raw, "num_attention_heads")?,
            n_head_kv_swa: opt_usize(&raw, "num_key_value_heads").unwrap_or(4),
            n_head_kv_full,
            head_dim_swa,
            head_dim_full,
            swa_layers: layer_types
                .iter()
                .map(|t| t == "sliding_attention")
                .collect(),
            sliding_window: get_usize(&raw, "sliding_window")? as u64,
            rope_full,
            rope_swa,
            rms_norm_eps,
            context_length: opt_usize(&raw, "max_position_embeddings").unwrap_or(131072) as u64,
            final_logit_softcapping: raw
                .get("final_logit_softcapping")
                .and_then(|x| x.as_f64())
                .filter(|&c| c != 0.0),
            n_kv_shared: opt_usize(&raw, "num_kv_shared_layers").unwrap_or(0),
            ple_dim: opt_usize(&raw, "hidden_size_per_layer_input").unwrap_or(0),
            double_wide_mlp: raw
                .get("use_double_wide_mlp")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            n_expert: opt_usize(&raw, "num_experts"),
            n_expert_used: opt_usize(&raw, "top_k_experts"),
            expert_ff: opt_usize(&raw, "moe_intermediate_size"),
            vocab_size: get_usize(&raw, "vocab_size")?,
            k_eq_v: raw
                .get("attention_k_eq_v")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            raw,
        };
        cfg.check_values()?;
        Ok(cfg)
    }

    /// The checks that need no tensors: every size positive, head sizes even, heads a multiple
    /// of KV heads, floats finite and in range, expert counts consistent.
    fn check_values(&self) -> Result<()> {
        let positive = [
            ("num_hidden_layers", self.n_layer),
            ("hidden_size", self.hidden),
            ("intermediate_size", self.n_ff),
            ("num_attention_heads", self.n_head),
            ("num_key_value_heads", self.n_head_kv_swa),
            ("head_dim", self.head_dim_swa),
            ("global_head_dim", self.head_dim_full),
            ("vocab_size", self.vocab_size),
            ("sliding_window", self.sliding_window as usize),
            ("max_position_embeddings", self.context_length as usize),
        ];
        // GGUF stores these as u32, and the per-layer ones as i32 arrays.
        let limit = i32::MAX as usize;
        for (k, v) in positive {
            if v == 0 {
                bail!("{k} is 0");
            }
            if v > limit {
                bail!("{k} {v} is more than GGUF can store ({limit})");
            }
        }
        for (k, v) in [
            ("num_kv_shared_layers", Some(self.n_kv_shared)),
            ("hidden_size_per_layer_input", Some(self.ple_dim)),
            ("num_global_key_value_heads", self.n_head_kv_full),
            ("num_experts", self.n_expert),
            ("top_k_experts", self.n_expert_used),
            ("moe_intermediate_size", self.expert_ff),
        ] {
            if v.is_some_and(|v| v > limit) {
                bail!(
                    "{k} {} is more than GGUF can store ({limit})",
                    v.unwrap_or(0)
                );
            }
        }
        if self.double_wide_mlp && 2 * self.n_ff > limit {
            bail!(
                "2 × intermediate_size {} (use_double_wide_mlp) is more than GGUF can store",
                self.n_ff
            );
        }
        for (k, v) in [
            ("head_dim", self.head_dim_swa),
            ("global_head_dim", self.head_dim_full),
        ] {
            if !v.is_multiple_of(2) {
                bail!("{k} {v} is odd (RoPE rotates pairs)");
            }
        }
        for (k, kv) in [
            ("num_key_value_heads", Some(self.n_head_kv_swa)),
            ("num_global_key_value_heads", self.n_head_kv_full),
        ] {
            if let Some(kv) = kv {
                if kv == 0 || !self.n_head.is_multiple_of(kv) {
                    bail!(
                        "num_attention_heads {} is not a multiple of {k} {kv}",
                        self.n_head
                    );
                }
            }
        }
        if self.n_kv_shared >= self.n_layer {
            bail!(
                "num_kv_shared_layers {} leaves none of the {} layers to compute K/V",
                self.n_kv_shared,
                self.n_layer
            );
        }
        // Written as f32: must stay a positive finite number there.
        let f32_ok = |x: f64| (x as f32).is_finite() && x as f32 > 0.0;
        if !f32_ok(self.rms_norm_eps) {
            bail!(
                "rms_norm_eps {} is not a positive number",
                self.rms_norm_eps
            );
        }
        for (name, r) in [
            ("full_attention", &self.rope_full),
            ("sliding_attention", &self.rope_swa),
        ] {
            if !f32_ok(r.theta) {
                bail!(
                    "rope_parameters.{name}.rope_theta {} is not a positive number",
                    r.theta
                );
            }
            if !(0.0..=1.0).contains(&r.partial_rotary_factor) {
                bail!(
                    "rope_parameters.{name}.partial_rotary_factor {} is not in [0, 1]",
                    r.partial_rotary_factor
                );
            }
        }
        if let Some(c) = self.final_logit_softcapping {
            if !f32_ok(c) {
                bail!("final_logit_softcapping {c} is not a positive number");
            }
        }
        let moe = self.raw.get("enable_moe_block").and_then(|b| b.as_bool()) == Some(true);
        match (self.n_expert, self.n_expert_used, self.expert_ff) {
            (Some(0), ..) => bail!("num_experts is 0"),
            (_, Some(0), _) if moe => bail!("top_k_experts is 0"),
            (_, _, Some(0)) => bail!("moe_intermediate_size is 0"),
            (Some(n), Some(k), _) if k > n => {
                bail!("top_k_experts {k} is more than num_experts {n}")
            }
            (None, ..) | (_, None, _) | (.., None) if moe => {
                bail!("enable_moe_block needs num_experts, top_k_experts and moe_intermediate_size")
            }
            _ => {}
        }
        Ok(())
    }

    /// Index of the first KV-shared layer.
    pub fn first_kv_shared(&self) -> usize {
        self.n_layer - self.n_kv_shared
    }

    /// FFN width of layer `il` (double in KV-shared layers with a double-wide MLP).
    pub fn n_ff_layer(&self, il: usize) -> usize {
        if self.double_wide_mlp && il >= self.first_kv_shared() {
            2 * self.n_ff
        } else {
            self.n_ff
        }
    }

    /// Number of rotated pairs in a global layer's head (the rest get frequency factor 1e30).
    pub fn n_rot_pairs_full(&self) -> usize {
        (self.head_dim_full as f64 * self.rope_full.partial_rotary_factor / 2.0) as usize
    }
}
