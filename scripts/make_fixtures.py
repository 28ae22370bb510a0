#!/usr/bin/env python3
"""Make gq's tiny Gemma 4 checkpoints with transformers itself (Gemma4ForCausalLM /
Gemma4ForConditionalGeneration + save_pretrained), so tensor names, dtypes, config keys and file
layout are exactly those of real downloads.

Usage: make_fixtures.py TOKENIZER_DIR OUT_DIR
Needs torch and transformers >= 5.17 (models/gemma4). Deterministic for a given torch version.

Fixtures (all share the 512-token tokenizer made by scripts/make_tokenizer.py):
- dense:  31B-like. Sliding + full layers, wider global heads (global_head_dim 128 vs 64) with
          fewer global kv heads (1 vs 2), attention_k_eq_v, final softcapping. Every matrix width
          is a multiple of 256 (k-quants never fall back). BF16, two shards + index.
- e2b:    E2B-like. Per-layer embeddings (PLE 16), KV-shared layers (2 of 4), double-wide MLP in
          the shared layers, widths not multiples of 256 (PLE 16 is not even a multiple of 32),
          saved as Gemma4ForConditionalGeneration with a tiny vision tower. F32, one file.
- moe:    26B-A4B-like. MoE block (4 experts, top 2, expert FFN 32) beside the dense MLP,
          k_eq_v, softcapping. BF16, one file.
Norms, scales and scalars are randomised in [0.5, 1.5] so a missing or extra +1 shows.
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import (Gemma4Config, Gemma4ForCausalLM, Gemma4ForConditionalGeneration,
                          Gemma4TextConfig, Gemma4VisionConfig)

ROPE = {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
}


def text_config(**kw):
    base = dict(vocab_size=512, vocab_size_per_layer_input=512, max_position_embeddings=4096,
                rms_norm_eps=1e-6, sliding_window=64, rope_parameters=ROPE, pad_token_id=0,
                eos_token_id=1, bos_token_id=2, tie_word_embeddings=True)
    base.update(kw)
    return Gemma4TextConfig(**base)


def randomise_scales(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if "norm" in name or leaf in ("scale", "per_expert_scale", "layer_scalar", "per_dim_scale"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def init_weights(model, gen, std=0.05):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def save(model, out: Path, tok: Path, dtype, shard: str | None):
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(dtype)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(out, **kw)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tok / f, out / f)
    files = sorted(p.name for p in out.iterdir())
    print(out, files)


def main():
    tok, out = Path(sys.argv[1]), Path(sys.argv[2])
    torch.manual_seed(0)

    gen = torch.Generator().manual_seed(1)
    dense = Gemma4ForCausalLM(text_config(
        hidden_size=256, intermediate_size=256, num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=64,
        global_head_dim=128, num_global_key_value_heads=1, attention_k_eq_v=True,
        hidden_size_per_layer_input=0, final_logit_softcapping=30.0))
    init_weights(dense, gen)
    randomise_scales(dense, gen)
    save(dense, out / "dense", tok, torch.bfloat16, "1MB")

    gen = torch.Generator().manual_seed(2)
    tc = text_config(
        hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, global_head_dim=64,
        hidden_size_per_layer_input=16, num_kv_shared_layers=2, use_double_wide_mlp=True,
        attention_k_eq_v=False, final_logit_softcapping=30.0)
    vc = Gemma4VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, num_key_value_heads=2, head_dim=16,
                            patch_size=4, position_embedding_size=64)
    e2b = Gemma4ForConditionalGeneration(Gemma4Config(text_config=tc, vision_config=vc, audio_config=None))
    init_weights(e2b, gen)
    randomise_scales(e2b, gen)
    save(e2b, out / "e2b", tok, torch.float32, None)

    gen = torch.Generator().manual_seed(3)
    moe = Gemma4ForCausalLM(text_config(
        hidden_size=64, intermediate_size=64, num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        num_attention_heads=2, num_key_value_heads=2, head_dim=32,
        global_head_dim=64, num_global_key_value_heads=1, attention_k_eq_v=True,
        hidden_size_per_layer_input=0, enable_moe_block=True, num_experts=4, top_k_experts=2,
        moe_intermediate_size=32, final_logit_softcapping=30.0))
    init_weights(moe, gen)
    randomise_scales(moe, gen)
    save(moe, out / "moe", tok, torch.bfloat16, None)


if __name__ == "__main__":
    main()
