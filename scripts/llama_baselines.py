#!/usr/bin/env python3
"""llama.cpp's own numbers on the trained fixture: convert_hf_to_gguf.py → BF16, llama-quantize to
each type, llama-perplexity PPL on the held-out text at ctx 512, and --kl-divergence statistics
against the BF16 baseline. Writes fixtures/trained.ref/baselines.json and docs/baselines.md.

Usage: scripts/llama_baselines.py [--python PY_WITH_TORCH] [--peers ~/.cache/gq-peers] [--threads 2]
Needs the peers from scripts/get_peers.sh and a Python with torch + transformers for the converter.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"]
CTX = 512


def run(cmd, log=None, retries_for=None):
    """Runs cmd; llama.cpp's async logger can drop its last lines at exit, so a run whose output
    lacks `retries_for` is repeated (at most 3 times)."""
    for _ in range(3):
        p = subprocess.run(cmd, capture_output=True, text=True)
        out = p.stdout + p.stderr
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{out[-3000:]}")
        if retries_for is None or retries_for in out:
            if log:
                Path(log).write_text(out)
            return out
    sys.exit(f"no {retries_for!r} in output of {' '.join(map(str, cmd))}\n{out[-3000:]}")


def num(pattern, text):
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"pattern {pattern!r} not found")
    return float(m.group(1))


def bpw(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    n = sum(int(t.n_elements) for t in r.tensors)
    b = sum(int(t.n_bytes) for t in r.tensors)
    return b * 8 / n, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--peers", default=os.environ.get("GQ_PEERS", str(Path.home() / ".cache/gq-peers")))
    ap.add_argument("--threads", default="2")
    ap.add_argument("--work", default="/tmp/gq-baselines")
    a = ap.parse_args()
    src = Path(a.peers) / "sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"
    bin_ = Path(a.peers) / "build/bin"
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = ROOT / "fixtures/trained"
    text = ckpt / "eval.txt"
    cmds = []

    bf16 = work / "trained-BF16.gguf"
    conv = [a.python, str(src / "convert_hf_to_gguf.py"), str(ckpt), "--outtype", "bf16", "--outfile", str(bf16)]
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    p = subprocess.run(conv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(p.stdout + p.stderr)
    cmds.append("PYTHONPATH=$LLAMA/gguf-py python3 $LLAMA/convert_hf_to_gguf.py fixtures/trained --outtype bf16 --outfile trained-BF16.gguf")
    subprocess.run([sys.executable, str(ROOT / "tests/py/gguf_manifest.py"), "make", str(bf16),
                    str(ROOT / "fixtures/trained.ref/convert-bf16.manifest.json")], check=True)

    base = work / "base.kld"
    t0 = time.time()
    out = run([bin_ / "llama-perplexity", "-m", bf16, "-f", text, "-c", str(CTX), "-b", str(CTX), "-t", a.threads,
               "--kl-divergence-base", base], work / "ppl-BF16.log", "Final estimate")
    rows = [{"type": "BF16", "file_bytes": bf16.stat().st_size, "bits_per_weight": bpw(bf16)[0],
             "ppl": num(r"Final estimate: PPL = ([0-9.]+)", out),
             "ppl_err": num(r"Final estimate: PPL = [0-9.]+ \+/- ([0-9.]+)", out), "seconds": time.time() - t0}]
    cmds.append(f"llama-perplexity -m trained-BF16.gguf -f fixtures/trained/eval.txt -c {CTX} -b {CTX} -t {a.threads} --kl-divergence-base base.kld")
    for ty in TYPES:
        q = work / f"trained-{ty}.gguf"
        run([bin_ / "llama-quantize", bf16, q, ty, a.threads], work / f"quantize-{ty}.log")
        t0 = time.time()
        out = run([bin_ / "llama-perplexity", "-m", q, "-f", text, "-c", str(CTX), "-b", str(CTX), "-t", a.threads,
                   "--kl-divergence-base", base, "--kl-divergence"], work / f"kld-{ty}.log", "Same top p:")
        rows.append({
            "type": ty, "file_bytes": q.stat().st_size, "bits_per_weight": bpw(q)[0],
            "ppl": num(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", out),
            "ppl_err": num(r"Mean PPL\(Q\)\s*:\s*[0-9.]+ ± \s*([0-9.]+)", out),
            "kld_mean": num(r"Mean    KLD:\s*([0-9.]+)", out),
            "kld_median": num(r"Median  KLD:\s*([0-9.]+)", out),
            "kld_p99": num(r"99.0%   KLD:\s*([0-9.]+)", out),
            "kld_max": num(r"Maximum KLD:\s*([0-9.]+)", out),
            "same_top_p": num(r"Same top p:\s*([0-9.]+)", out),
            "seconds": time.time() - t0,
        })
        cmds.append(f"llama-quantize trained-BF16.gguf trained-{ty}.gguf {ty} {a.threads}")
        cmds.append(f"llama-perplexity -m trained-{ty}.gguf -f fixtures/trained/eval.txt -c {CTX} -b {CTX} -t {a.threads} --kl-divergence-base base.kld --kl-divergence")
    n_weights = bpw(bf16)[1]
    result = {"model": "fixtures/trained", "weights": n_weights, "ctx": CTX, "eval_text": "fixtures/trained/eval.txt",
              "llama_cpp": "llama-cpp-python 0.3.36 sdist (vendor/llama.cpp)", "threads": int(a.threads),
              "commands": cmds, "rows": rows}
    (ROOT / "fixtures/trained.ref/baselines.json").write_text(json.dumps(result, indent=1) + "\n")
    train = json.loads((ROOT / "fixtures/trained.ref/training.json").read_text())
    md = ["# Baselines: llama.cpp on the trained fixture", "",
          "Measured by `scripts/llama_baselines.py` (re-run it to reproduce) with llama.cpp built from the",
          "llama-cpp-python 0.3.36 sdist (`scripts/get_peers.sh`). Model: `fixtures/trained`, a",
          f"{train['parameters']/1e6:.1f} M-parameter Gemma 4 trained by `scripts/train_fixture.py`;",
          f"text: `fixtures/trained/eval.txt` (Hamlet, held out of training), ctx {CTX}.",
          f"Held-out PPL in training (transformers, all positions): {train['best_held_out_ppl']:.2f};",
          f"unigram baseline of its tokenizer: {train['unigram_held_out_ppl']:.2f}.", "",
          "| type | file bytes | bits/weight | PPL | mean KLD | median KLD | p99 KLD | max KLD | same top-1 |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["type"] == "BF16":
            md.append(f"| BF16 | {r['file_bytes']} | {r['bits_per_weight']:.3f} | {r['ppl']:.4f} ± {r['ppl_err']:.4f} | – | – | – | – | – |")
        else:
            md.append(f"| {r['type']} | {r['file_bytes']} | {r['bits_per_weight']:.3f} | {r['ppl']:.4f} ± {r['ppl_err']:.4f} | "
                      f"{r['kld_mean']:.6f} | {r['kld_median']:.6f} | {r['kld_p99']:.6f} | {r['kld_max']:.6f} | {r['same_top_p']:.3f} % |")
    md += ["", "Commands (LLAMA = the sdist's vendor/llama.cpp, tools from its build):", "", "```"] + cmds + ["```", ""]
    (ROOT / "docs/baselines.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
