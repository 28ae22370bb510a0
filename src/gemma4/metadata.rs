//! The `general.*` and `gemma4.*` GGUF keys, with the values, value types and order that
//! llama.cpp's converter (`conversion/gemma.py`, `Gemma4Model`) writes.

use super::config::TextConfig;
use super::FileType;
use crate::gguf::{MetaArray, MetaValue, Metadata};

/// The GGUF architecture name.
pub const ARCH: &str = "gemma4";

fn k(key: &str) -> String {
    format!("{ARCH}.{key}")
}

/// Writes `general.architecture`, `general.type`, `general.name` and `general.size_label`.
pub fn general(meta: &mut Metadata, name: &str, size_label: Option<String>) {
    meta.set("general.architecture", MetaValue::Str(ARCH.into()));
    meta.set("general.type", MetaValue::Str("model".into()));
    meta.set("general.name", MetaValue::Str(name.into()));
    if let Some(s) = size_label {
        meta.set("general.size_label", MetaValue::Str(s));
    }
}

/// Writes every `gemma4.*` hyper-parameter key and `general.file_type`.
pub fn hparams(meta: &mut Metadata, c: &TextConfig, file_type: FileType) {
    let u32v = |x: usize| MetaValue::U32(x as u32);
    meta.set(k("block_count"), u32v(c.n_layer));
    meta.set(k("context_length"), MetaValue::U32(c.context_length as u32));
    meta.set(k("embedding_length"), u32v(c.hidden));
    meta.set(k("feed_forward_length"), u32v(c.n_ff));
    meta.set(k("attention.head_count"), u32v(c.n_head));
    meta.set(k("attention.head_count_kv"), u32v(c.n_head_kv_swa));
    meta.set(
        k("rope.freq_base"),
        MetaValue::F32(c.rope_full.theta as f32),
    );
    meta.set(
        k("rope.freq_base_swa"),
        MetaValue::F32(c.rope_swa.theta as f32),
    );
    meta.set(
        k("attention.layer_norm_rms_epsilon"),
        MetaValue::F32(c.rms_norm_eps as f32),
    );
    if let Some(n) = c.n_expert {
        meta.set(k("expert_count"), u32v(n));
    }
    if let Some(n) = c.n_expert_used {
        meta.set(k("expert_used_count"), u32v(n));
    }
    meta.set(k("attention.key_length"), u32v(c.head_dim_swa));
    meta.set(k("attention.value_length"), u32v(c.head_dim_swa));
    meta.set("general.file_type", MetaValue::U32(file_type.id()));
    if let Some(cap) = c.final_logit_softcapping {
        meta.set(k("final_logit_softcapping"), MetaValue::F32(cap as f32));
    }
    meta.set(
        k("attention.sliding_window"),
        MetaValue::U32(c.sliding_window as u32),
    );
    meta.set(k("attention.shared_kv_layers"), u32v(c.n_kv_shared));
    meta.set(k("embedding_length_per_layer_input"), u32v(c.ple_dim));
    meta.set(
        k("attention.sliding_window_pattern"),
        MetaValue::Array(MetaArray::Bool(c.swa_layers.clone())),
    );
    meta.set(k("attention.key_length"), u32v(c.head_dim_full));
    meta.set(k("attention.value_length"), u32v(c.head_dim_full));
    meta.set(k("attention.key_length_swa"), u32v(c.head_dim_swa));
    meta.set(k("attention.value_length_swa"), u32v(c.head_dim_swa));
    if let Some(n) = c.expert_ff {
        meta.set(k("expert_feed_forward_length"), u32v(n));
    }
    if c.double_wide_mlp {
        let ff = (0..c.n_layer).map(|il| c.n_ff_layer(il) as i32).collect();
        meta.set(
            k("feed_forward_length"),
            MetaValue::Array(MetaArray::I32(ff)),
        );
    }
    if let Some(full) = c.n_head_kv_full {
        let kv = c
            .swa_layers
            .iter()
            .map(|&swa| if swa { c.n_head_kv_swa } else { full } as i32)
            .collect();
        meta.set(
            k("attention.head_count_kv"),
            MetaValue::Array(MetaArray::I32(kv)),
        );
    }
    meta.set(k("rope.dimension_count"), u32v(c.head_dim_full));
    meta.set(k("rope.dimension_count_swa"), u32v(c.head_dim_swa));
}

/// gguf-py's `model_weight_count_rounded_notation`: "252K", "1.4M", "31B".
pub fn rounded_count(n: u64, min_digits: usize) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    // Python's round() is round-half-even.
    let r = scaled.round_ties_even() as u64;
    let digits = r.to_string().trim_start_matches('0').len();
    let fix = min_digits.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// gguf-py's `size_label` from the parameter counts of the written tensors.
pub fn size_label(total: u64, shared: u64, expert: u64, expert_count: u64) -> String {
    if expert_count > 0 {
        format!("{expert_count}x{}", rounded_count(shared + expert, 2))
    } else {
        rounded_count(total, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_counts_like_gguf_py() {
        assert_eq!(rounded_count(252_000, 2), "252K");
        assert_eq!(rounded_count(1_234_567, 2), "1.2M");
        assert_eq!(rounded_count(30_700_000_000, 2), "31B");
        assert_eq!(size_label(0, 100_000, 8_000, 4), "4x108K");
    }
}
