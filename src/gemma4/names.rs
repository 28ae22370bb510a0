//! Hugging Face → GGUF tensor names for Gemma 4 (gguf-py's `tensor_mapping.py` for GEMMA4 plus
//! `Gemma4Model`'s renames), and which checkpoint tensors belong to the vision/audio towers.

/// What the converter does with one checkpoint tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// A text-model tensor and its GGUF name.
    Text(String),
    /// A vision or audio tower tensor, skipped.
    Tower,
}

/// Top-level (non-layer) tensors.
const GLOBAL: [(&str, &str); 6] = [
    ("embed_tokens.weight", "token_embd.weight"),
    (
        "embed_tokens_per_layer.weight",
        "per_layer_token_embd.weight",
    ),
    (
        "per_layer_model_projection.weight",
        "per_layer_model_proj.weight",
    ),
    (
        "per_layer_projection_norm.weight",
        "per_layer_proj_norm.weight",
    ),
    ("norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Per-layer tensors: HF suffix after `layers.N.` → GGUF suffix after `blk.N.`.
const LAYER: [(&str, &str); 26] = [
    ("input_layernorm.weight", "attn_norm.weight"),
    (
        "post_attention_layernorm.weight",
        "post_attention_norm.weight",
    ),
    ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
    (
        "post_feedforward_layernorm_1.weight",
        "post_ffw_norm_1.weight",
    ),
    (
        "post_feedforward_layernorm_2.weight",
        "post_ffw_norm_2.weight",
    ),
    (
        "pre_feedforward_layernorm_2.weight",
        "pre_ffw_norm_2.weight",
    ),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
    ("experts.gate_up_proj", "ffn_gate_up_exps.weight"),
    ("experts.down_proj", "ffn_down_exps.weight"),
    ("router.proj.weight", "ffn_gate_inp.weight"),
    ("router.scale", "ffn_gate_inp.scale"),
    ("router.per_expert_scale", "ffn_down_exps.scale"),
    ("layer_scalar", "layer_output_scale.weight"),
    ("per_layer_input_gate.weight", "inp_gate.weight"),
    ("per_layer_projection.weight", "proj.weight"),
    ("post_per_layer_input_norm.weight", "post_norm.weight"),
    ("self_attn.rotary_emb.inv_freq", ""),
];

/// Maps a checkpoint tensor name. `None` means gq does not know the tensor (an error: the
/// converter refuses unknown tensors too).
pub fn map_name(hf: &str) -> Option<Mapped> {
    if is_tower(hf) {
        return Some(Mapped::Tower);
    }
    let name = hf.replacen("model.language_model.", "model.", 1);
    let name = name.strip_prefix("model.").unwrap_or(&name);
    if let Some((_, g)) = GLOBAL.iter().find(|(h, _)| *h == name) {
        return Some(Mapped::Text(g.to_string()));
    }
    let rest = name.strip_prefix("layers.")?;
    let (idx, suffix) = rest.split_once('.')?;
    let il: usize = idx.parse().ok()?;
    let (_, g) = LAYER.iter().find(|(h, _)| *h == suffix)?;
    if g.is_empty() {
        return Some(Mapped::Tower);
    }
    Some(Mapped::Text(format!("blk.{il}.{g}")))
}

/// The converter's multimodal filter (TextModel.filter_tensors), as it applies to Gemma 4.
fn is_tower(name: &str) -> bool {
    const SUBSTR: [&str; 8] = [
        "visual.",
        "vision.",
        "audio.",
        "vision_",
        "audio_",
        "projector.",
        "patch_embed",
        "embed_vision",
    ];
    SUBSTR.iter().any(|s| name.contains(s)) || name.contains("embed_audio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_layouts() {
        let t = |s: &str| Some(Mapped::Text(s.to_string()));
        assert_eq!(
            map_name("model.layers.3.self_attn.q_proj.weight"),
            t("blk.3.attn_q.weight")
        );
        assert_eq!(
            map_name("model.language_model.layers.12.layer_scalar"),
            t("blk.12.layer_output_scale.weight")
        );
        assert_eq!(
            map_name("model.language_model.embed_tokens.weight"),
            t("token_embd.weight")
        );
        assert_eq!(
            map_name("model.layers.0.router.per_expert_scale"),
            t("blk.0.ffn_down_exps.scale")
        );
        assert_eq!(
            map_name("model.vision_tower.encoder.layers.0.input_layernorm.weight"),
            Some(Mapped::Tower)
        );
        assert_eq!(
            map_name("model.embed_vision.embedding_projection.weight"),
            Some(Mapped::Tower)
        );
        assert_eq!(map_name("model.layers.0.self_attn.mystery.weight"), None);
    }
}
