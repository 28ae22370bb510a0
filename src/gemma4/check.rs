//! config.json against the checkpoint's tensors: every text-model tensor's shape must be the one
//! the configuration implies (heads × head size against the q/k/v/o rows, KV heads, FFN and
//! expert widths, per-layer-embedding width, vocabulary against the embedding rows). A config
//! that contradicts its checkpoint would otherwise become a GGUF that llama.cpp refuses later,
//! or worse, loads with the wrong hyper-parameters. Tensors the config implies but the
//! checkpoint lacks are reported by the plan ([`super::plan::expected_tensors`]).

use super::config::TextConfig;
use super::names::{map_name, Mapped};
use crate::safetensors::Checkpoint;
use anyhow::{anyhow, bail, Result};
use std::path::Path;

/// One factor of an expected dimension: the config key it comes from and its value.
type Dim = (&'static str, usize);

fn product(parts: &[Dim]) -> Result<usize> {
    parts.iter().try_fold(1usize, |a, &(k, v)| {
        a.checked_mul(v)
            .ok_or_else(|| anyhow!("{}: {k} = {v} makes the size overflow", describe(parts)))
    })
}

fn describe(parts: &[Dim]) -> String {
    parts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" × ")
}

/// The shape (PyTorch order) config.json implies for a text tensor with this GGUF name, each
/// dimension with the keys it comes from; `None` for names the check does not cover.
fn expected(c: &TextConfig, gguf: &str) -> Result<Option<Vec<Vec<Dim>>>> {
    let hidden: Dim = ("hidden_size", c.hidden);
    let ple: Dim = ("hidden_size_per_layer_input", c.ple_dim);
    let vocab: Dim = ("vocab_size", c.vocab_size);
    let layers: Dim = ("num_hidden_layers", c.n_layer);
    let v = |d: &[&[Dim]]| Ok(Some(d.iter().map(|x| x.to_vec()).collect()));
    match gguf {
        "token_embd.weight" | "output.weight" => return v(&[&[vocab], &[hidden]]),
        "output_norm.weight" => return v(&[&[hidden]]),
        "per_layer_token_embd.weight" => {
            let vp = c
                .raw
                .get("vocab_size_per_layer_input")
                .and_then(|x| x.as_u64())
                .map_or(c.vocab_size, |x| x as usize);
            return v(&[&[("vocab_size_per_layer_input", vp)], &[layers, ple]]);
        }
        "per_layer_model_proj.weight" => return v(&[&[layers, ple], &[hidden]]),
        "per_layer_proj_norm.weight" => return v(&[&[ple]]),
        _ => {}
    }
    let Some((il, suffix)) = gguf
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(i, s)| Some((i.parse::<usize>().ok()?, s)))
    else {
        return Ok(None);
    };
    if il >= c.n_layer {
        bail!(
            "belongs to layer {il}, but config.json has num_hidden_layers {}",
            c.n_layer
        );
    }
    let swa = c.swa_layers[il];
    let hd: Dim = if swa {
        ("head_dim", c.head_dim_swa)
    } else {
        ("global_head_dim", c.head_dim_full)
    };
    let kv: Dim = match (swa, c.n_head_kv_full) {
        (false, Some(k)) => ("num_global_key_value_heads", k),
        _ => ("num_key_value_heads", c.n_head_kv_swa),
    };
    let heads: Dim = ("num_attention_heads", c.n_head);
    let ff_key = if c.n_ff_layer(il) == c.n_ff {
        "intermediate_size"
    } else {
        "2 × intermediate_size (use_double_wide_mlp)"
    };
    let ff: Dim = (ff_key, c.n_ff_layer(il));
    let need = |x: Option<usize>, key: &'static str| -> Result<Dim> {
        Ok((
            key,
            x.ok_or_else(|| anyhow!("is an expert tensor, but config.json has no {key}"))?,
        ))
    };
    match suffix {
        "attn_q.weight" => v(&[&[heads, hd], &[hidden]]),
        "attn_k.weight" | "attn_v.weight" => v(&[&[kv, hd], &[hidden]]),
        "attn_output.weight" => v(&[&[hidden], &[heads, hd]]),
        "attn_q_norm.weight" | "attn_k_norm.weight" => v(&[&[hd]]),
        "attn_norm.weight"
        | "post_attention_norm.weight"
        | "ffn_norm.weight"
        | "post_ffw_norm.weight"
        | "post_ffw_norm_1.weight"
        | "post_ffw_norm_2.weight"
        | "pre_ffw_norm_2.weight"
        | "post_norm.weight"
        | "ffn_gate_inp.scale" => v(&[&[hidden]]),
        "layer_output_scale.weight" => v(&[&[("(one value)", 1)]]),
        "ffn_gate.weight" | "ffn_up.weight" => v(&[&[ff], &[hidden]]),
        "ffn_down.weight" => v(&[&[hidden], &[ff]]),
        "inp_gate.weight" => v(&[&[ple], &[hidden]]),
        "proj.weight" => v(&[&[hidden], &[ple]]),
        "ffn_gate_inp.weight" => v(&[&[need(c.n_expert, "num_experts")?], &[hidden]]),
        "ffn_down_exps.scale" => v(&[&[need(c.n_expert, "num_experts")?]]),
        "ffn_gate_up_exps.weight" => {
            let e = need(c.n_expert, "num_experts")?;
            let f = need(c.expert_ff, "moe_intermediate_size")?;
            v(&[&[e], &[("2", 2), f], &[hidden]])
        }
        "ffn_down_exps.weight" => {
            let e = need(c.n_expert, "num_experts")?;
            let f = need(c.expert_ff, "moe_intermediate_size")?;
            v(&[&[e], &[hidden], &[f]])
        }
        _ => Ok(None),
    }
}

/// Checks every text-model tensor of `ckpt` against `cfg`. Errors name the shard, the tensor,
/// its shape, the shape config.json implies and the keys it comes from.
pub fn check_tensors(cfg: &TextConfig, ckpt: &Checkpoint) -> Result<()> {
    check_shapes(
        cfg,
        &ckpt.dir.join("config.json"),
        ckpt.tensors.iter().map(|t| {
            (
                ckpt.shards[t.shard].path.as_path(),
                t.name.as_str(),
                &t.shape[..],
            )
        }),
    )
}

/// [`check_tensors`] over (shard path, checkpoint name, shape) triples; `config` names the
/// config file in errors.
pub fn check_shapes<'a>(
    cfg: &TextConfig,
    config: &Path,
    tensors: impl Iterator<Item = (&'a Path, &'a str, &'a [usize])>,
) -> Result<()> {
    for (shard, name, shape) in tensors {
        let Some(Mapped::Text(gguf)) = map_name(name) else {
            continue;
        };
        let shard = shard.display();
        let at = |e: anyhow::Error| anyhow!("{shard}: tensor {name}: {e}");
        let Some(want) = expected(cfg, &gguf).map_err(at)? else {
            continue;
        };
        let dims: Vec<usize> = want
            .iter()
            .map(|p| product(p))
            .collect::<Result<_>>()
            .map_err(|e| anyhow!("{}: {e}", config.display()))?;
        if shape != dims {
            let keys: Vec<String> = want.iter().map(|p| describe(p)).collect();
            bail!(
                "{shard}: tensor {name} has shape {shape:?}, but {} implies {dims:?} ([{}]): the \
                 config does not describe this checkpoint",
                config.display(),
                keys.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_shapes_name_their_keys() {
        let v = serde_json::json!({
            "architectures": ["Gemma4ForCausalLM"], "num_hidden_layers": 2,
            "layer_types": ["sliding_attention", "full_attention"], "head_dim": 64,
            "global_head_dim": 128, "num_key_value_heads": 2, "num_global_key_value_heads": 1,
            "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
            "sliding_window": 64, "vocab_size": 512,
            "rope_parameters": {"full_attention": {"rope_theta": 1e6, "rope_type": "proportional",
                "partial_rotary_factor": 0.25}, "sliding_attention": {"rope_theta": 1e4}}
        });
        let c = TextConfig::from_json(&v).unwrap();
        let dims = |n: &str| -> Vec<usize> {
            expected(&c, n)
                .unwrap()
                .unwrap()
                .iter()
                .map(|p| product(p).unwrap())
                .collect()
        };
        assert_eq!(dims("blk.0.attn_q.weight"), [256, 256]);
        assert_eq!(dims("blk.1.attn_q.weight"), [512, 256]);
        assert_eq!(dims("blk.1.attn_k.weight"), [128, 256]);
        assert_eq!(dims("blk.0.attn_k.weight"), [128, 256]);
        assert_eq!(dims("token_embd.weight"), [512, 256]);
        let e = expected(&c, "blk.2.attn_q.weight").unwrap_err().to_string();
        assert!(
            e.contains("layer 2") && e.contains("num_hidden_layers 2"),
            "{e}"
        );
        let e = expected(&c, "blk.0.ffn_gate_inp.weight")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no num_experts"), "{e}");
        let q = expected(&c, "blk.1.attn_q.weight").unwrap().unwrap();
        assert_eq!(
            describe(&q[0]),
            "num_attention_heads 4 × global_head_dim 128"
        );
    }
}
