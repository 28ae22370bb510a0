#!/usr/bin/env python3
"""Write a large synthetic Gemma 4 checkpoint for benches: real Gemma 4 tensor names, dtypes,
config keys and sharded layout (31B-like: sliding + global layers, wider global heads, k_eq_v),
widths scaled down, weights random normal (std 0.02) in BF16. Only numpy is needed.

Usage: make_synthetic.py OUT_DIR [--layers 12] [--hidden 2560] [--ff 10240] [--shard-gb 1]
The default is about 2.3 GB. The tokenizer comes from fixtures/tokenizer-2048.
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def bf16_bytes(a: np.ndarray) -> bytes:
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=2560)
    ap.add_argument("--ff", type=int, default=10240)
    ap.add_argument("--shard-gb", type=float, default=1.0)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head-dim", type=int, default=128)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = ROOT / "fixtures/tokenizer-2048"
    vocab = json.loads((tok / "tokenizer.json").read_text())["model"]["vocab"]
    V, H, FF, L = len(vocab), a.hidden, a.ff, a.layers
    heads, hd = a.heads, a.head_dim
    kv, ghd = max(1, heads // 2), 2 * hd
    gkv = max(1, kv // 2)
    types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(L)]
    types[-1] = "full_attention"
    cfg = {
        "architectures": ["Gemma4ForCausalLM"], "model_type": "gemma4_text", "dtype": "bfloat16",
        "hidden_size": H, "intermediate_size": FF, "num_hidden_layers": L, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": hd, "layer_types": types, "attention_k_eq_v": True,
        "per_layer_config": {str(i): {"head_dim": ghd, "num_key_value_heads": gkv}
                             for i, t in enumerate(types) if t == "full_attention"},
        "sliding_window": 1024, "max_position_embeddings": 262144, "rms_norm_eps": 1e-6,
        "final_logit_softcapping": 30.0, "hidden_size_per_layer_input": 0, "num_kv_shared_layers": 0,
        "use_double_wide_mlp": False, "enable_moe_block": False, "num_experts": None,
        "top_k_experts": None, "moe_intermediate_size": None, "vocab_size": V,
        "vocab_size_per_layer_input": V, "tie_word_embeddings": True,
        "hidden_activation": "gelu_pytorch_tanh", "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        "rope_parameters": {"full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1e6, "rope_type": "proportional"},
                            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"}},
    }
    tensors = [("model.embed_tokens.weight", (V, H)), ("model.norm.weight", (H,))]
    for i, t in enumerate(types):
        g = t == "full_attention"
        d, k = (ghd, gkv) if g else (hd, kv)
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", (H,)), (p + "post_attention_layernorm.weight", (H,)),
            (p + "pre_feedforward_layernorm.weight", (H,)), (p + "post_feedforward_layernorm.weight", (H,)),
            (p + "layer_scalar", (1,)),
            (p + "self_attn.q_proj.weight", (heads * d, H)), (p + "self_attn.k_proj.weight", (k * d, H)),
            (p + "self_attn.o_proj.weight", (H, heads * d)), (p + "self_attn.q_norm.weight", (d,)),
            (p + "self_attn.k_norm.weight", (d,)),
            (p + "mlp.gate_proj.weight", (FF, H)), (p + "mlp.up_proj.weight", (FF, H)), (p + "mlp.down_proj.weight", (H, FF)),
        ]
        if not g:
            tensors.append((p + "self_attn.v_proj.weight", (k * d, H)))
    tensors.sort()
    shards, cur, size = [], [], 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        if cur and size + n > a.shard_gb * 1e9:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    shards.append(cur)
    rng = np.random.default_rng(0)
    weight_map, total = {}, 0
    for si, shard in enumerate(shards):
        fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape in shard:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(out / fname, "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for name, shape in shard:
                if len(shape) == 1:
                    f.write(bf16_bytes(rng.uniform(0.5, 1.5, shape)))
                else:
                    rows_per = max(1, (1 << 22) // shape[-1])
                    for r in range(0, shape[0], rows_per):
                        rr = min(rows_per, shape[0] - r)
                        f.write(bf16_bytes(rng.standard_normal((rr, shape[-1]), dtype=np.float32) * 0.02))
        total += off
        print(f"{fname}: {off / 1e9:.2f} GB")
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tok / f, out / f)
    print(f"{out}: {total / 1e9:.2f} GB in {len(shards)} shards")


if __name__ == "__main__":
    main()
