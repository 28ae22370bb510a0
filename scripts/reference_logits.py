#!/usr/bin/env python3
"""Reference logits for gq's runner: transformers' Gemma 4, fp32 on the CPU (run on the GPU machine).

Usage: reference_logits.py FIXTURES_DIR OUT_DIR [--dry-run] [--threads N]

For each fixture (dense, e2b, moe, trained) the checkpoint is loaded with the class its config
names (Gemma4ForCausalLM or Gemma4ForConditionalGeneration), weights upcast to float32, eager
attention, on the CPU (no TF32, no reduced-precision matmuls), and run once over a fixed input of
N_TOKENS tokens without a cache. Saved: `OUT_DIR/<fixture>-transformers-logits.safetensors` with
  ids     I32 [N_TOKENS]        the input (BOS first)
  logits  F32 [N_TOKENS, V]     the final logits (after softcapping) at every position
(and `OUT_DIR/diagnostics.safetensors`: the hidden states after each layer, for debugging; not
committed), and for the trained fixture also transformers' greedy generation (generate, do_sample=False):
  gen_prompt I32 [P], gen_tokens I32 [N_GEN] (new tokens only), gen_margin F32 [N_GEN]
  (top-1 minus top-2 logit at each generated step, to tell a tie from a bug).
The safetensors metadata records the versions, the device, the exact command and how the input
was made.

Inputs: the random fixtures get a deterministic pseudo-random id sequence (an LCG, ids 5..V-1
after BOS); the trained fixture gets BOS + the first ids of fixtures/trained/eval.txt as its own
tokenizer (tokenizer.json, through transformers' AutoTokenizer) encodes it. N_TOKENS crosses
every fixture's sliding window at least twice (checked).

--dry-run checks the fixtures and the inputs without torch/transformers (run it anywhere).
"""
import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

FIXTURES = ["dense", "e2b", "moe", "trained"]
N_TOKENS = 320
N_PROMPT = 16
N_GEN = 64


def text_config(cfg: dict) -> dict:
    return {**cfg, **cfg.get("text_config", {})}


def lcg_ids(n: int, vocab: int, seed: int) -> list[int]:
    """BOS (2), then n-1 ids in [5, vocab) from a 31-bit LCG."""
    x = seed
    out = [2]
    for _ in range(n - 1):
        x = (1103515245 * x + 12345) % (1 << 31)
        out.append(5 + (x >> 8) % (vocab - 5))
    return out


def check_fixture(fx: Path) -> dict:
    cfg = json.loads((fx / "config.json").read_text())
    tc = text_config(cfg)
    sw = tc["sliding_window"]
    assert N_TOKENS > 2 * sw, f"{fx}: {N_TOKENS} tokens do not cross the window {sw} twice"
    assert "sliding_attention" in tc["layer_types"] and "full_attention" in tc["layer_types"]
    return tc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python3 scripts/reference_logits.py " + " ".join(sys.argv[1:])

    configs = {name: check_fixture(args.fixtures / name) for name in FIXTURES}
    for name, tc in configs.items():
        print(f"{name}: vocab {tc['vocab_size']}, window {tc['sliding_window']}, "
              f"layers {tc['layer_types']}", flush=True)
    if args.dry_run:
        ids = lcg_ids(N_TOKENS, 512, 1)
        assert len(ids) == N_TOKENS and min(ids[1:]) >= 5 and max(ids) < 512
        eval_txt = args.fixtures / "trained" / "eval.txt"
        assert eval_txt.stat().st_size > 10_000, eval_txt
        print("dry run: fixtures and inputs look right", flush=True)
        return 0

    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)

    base_meta = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": "float32 (weights upcast from the checkpoint's dtype), eager attention",
        "command": command,
        "script": "scripts/reference_logits.py",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    failed = []
    diag = {}
    for si, name in enumerate(FIXTURES):
        try:
            run_fixture(args, si, name, configs[name], base_meta, diag)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if diag:
        from safetensors.numpy import save_file

        # Not committed: each decoder layer's output, to find the layer where a runner departs.
        save_file(diag, str(args.out / "diagnostics.safetensors"), metadata=base_meta)
    if failed:
        print(f"FAILED: {failed}", flush=True)
        return 1
    return 0


def run_fixture(args, si: int, name: str, tc: dict, base_meta: dict, diag: dict) -> None:
    import numpy as np
    import torch
    import transformers
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    fx = args.fixtures / name
    arch = json.loads((fx / "config.json").read_text())["architectures"][0]
    cls = getattr(transformers, arch)
    t0 = time.time()
    model, info = cls.from_pretrained(
        str(fx), dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    towers = ("lm_head", "vision", "audio")
    missing = [k for k in info.get("missing_keys", []) if not any(t in k for t in towers)]
    assert not missing, f"{name}: weights missing from the checkpoint: {missing}"
    print(f"{name}: {arch} loaded in {time.time() - t0:.1f}s; loading info "
          f"{ {k: list(v)[:8] for k, v in info.items()} }", flush=True)
    vocab = tc["vocab_size"]
    meta = dict(base_meta)
    meta["fixture"] = f"fixtures/{name}"
    meta["class"] = arch
    if name == "trained":
        tok = AutoTokenizer.from_pretrained(str(fx))
        text = (fx / "eval.txt").read_text(encoding="utf-8")
        body = tok(text, add_special_tokens=False)["input_ids"]
        ids = [tc["bos_token_id"]] + body[: N_TOKENS - 1]
        meta["input"] = (f"BOS ({tc['bos_token_id']}) + the first {N_TOKENS - 1} ids of "
                         "fixtures/trained/eval.txt (AutoTokenizer, add_special_tokens=False)")
    else:
        ids = lcg_ids(N_TOKENS, vocab, seed=1 + si)
        meta["input"] = (f"BOS (2) + {N_TOKENS - 1} ids 5 + (x >> 8) % (vocab - 5), "
                         f"x <- (1103515245 x + 12345) mod 2^31, x0 = {1 + si}")
    assert len(ids) == N_TOKENS
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False, output_hidden_states=True)
    logits = out.logits[0].float().numpy()
    if out.hidden_states is not None:
        hs = torch.stack([h[0].float() for h in out.hidden_states]).numpy()
        diag[f"{name}.hidden_states"] = np.ascontiguousarray(hs, dtype=np.float32)
    assert logits.shape == (N_TOKENS, vocab), logits.shape
    assert np.isfinite(logits).all()
    tensors = {
        "ids": np.asarray(ids, dtype=np.int32),
        "logits": np.ascontiguousarray(logits, dtype=np.float32),
    }
    if name == "trained":
        prompt = ids[:N_PROMPT]
        # No stop at <eos>: exactly N_GEN greedy tokens (the model's own generation config
        # names eos 1, which generate would merge in otherwise).
        model.generation_config.eos_token_id = None
        gc = transformers.GenerationConfig(
            max_new_tokens=N_GEN, min_new_tokens=0, do_sample=False, num_beams=1,
            eos_token_id=None, pad_token_id=0, bos_token_id=2, use_cache=True)
        with torch.no_grad():
            g = model.generate(input_ids=torch.tensor([prompt]), generation_config=gc,
                               output_scores=True, return_dict_in_generate=True)
        new = g.sequences[0, N_PROMPT:].tolist()
        assert len(new) == N_GEN, f"generate made {len(new)} tokens"
        margins = []
        for s in g.scores:
            top = torch.topk(s[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        # The same greedy sequence by full forwards without a cache (a check on generate).
        seq = list(prompt)
        with torch.no_grad():
            for _ in range(N_GEN):
                lg = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
                seq.append(int(torch.argmax(lg)))
        manual_agrees = seq[N_PROMPT:] == new
        tensors["gen_prompt"] = np.asarray(prompt, dtype=np.int32)
        tensors["gen_tokens"] = np.asarray(new, dtype=np.int32)
        tensors["gen_margin"] = np.asarray(margins, dtype=np.float32)
        meta["generation"] = (
            f"model.generate(prompt = the first {N_PROMPT} input ids, max_new_tokens={N_GEN}, "
            "do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0, use_cache=True)")
        meta["generation_manual_no_cache_agrees"] = str(manual_agrees)
        print(f"{name}: generated {new}; min margin {min(margins):.4g}; "
              f"no-cache greedy agrees: {manual_agrees}", flush=True)
    path = args.out / f"{name}-transformers-logits.safetensors"
    save_file(tensors, str(path), metadata=meta)
    print(f"{name}: wrote {path} ({os.path.getsize(path)} bytes), logits max |z| "
          f"{np.abs(logits).max():.4g}, {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
