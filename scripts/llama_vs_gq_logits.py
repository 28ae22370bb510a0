#!/usr/bin/env python3
"""How far llama.cpp's logits are from gq's on the same GGUF file (docs/eval.md).

llama-perplexity --kl-divergence-base writes the log-probabilities of every scored position
(16-bit, over the 16 nats below the top; llama.cpp's own format, read here as
tools/perplexity/perplexity.cpp reads it back). gq logits gives gq's logits at the same
positions of the same chunks (BOS first). Printed: the KLD of gq's distribution from llama.cpp's,
computed as llama-perplexity --kl-divergence computes it (tokens with log p > -16), the top-1
agreement, and the PPL of each over those positions.

Usage: python3 scripts/llama_vs_gq_logits.py FILE.gguf [--ctx 512] [--chunks 8] [--threads 2]
       [--text fixtures/trained/eval.txt] [--bf16-act]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--text", default=str(ROOT / "fixtures/trained/eval.txt"))
    ap.add_argument("--peers", default=os.environ.get("GQ_PEERS", str(Path.home() / ".cache/gq-peers")))
    ap.add_argument("--gq", default=str(ROOT / "target/release/gq"))
    ap.add_argument("--bf16-act", action="store_true",
                    help="gq multiplies BF16 weights with BF16-rounded activations, as ggml does")
    ap.add_argument("--llama-args", default="",
                    help="more llama-perplexity options, space-separated (e.g. '-fa off -ctk f32')")
    a = ap.parse_args()
    tool = Path(a.peers) / "build/bin/llama-perplexity"
    if not tool.is_file():
        sys.exit(f"{tool} not found: run `bash scripts/get_peers.sh`")
    work = Path(tempfile.mkdtemp(prefix="gq-llama-logits-"))
    base = work / "base.kld"
    c = str(a.ctx)
    o = subprocess.run([str(tool), "-m", a.model, "-f", a.text, "-c", c, "-b", c, "-t", a.threads,
                        "--chunks", str(a.chunks), "--kl-divergence-base", str(base)] + a.llama_args.split(),
                       capture_output=True, text=True)
    if o.returncode != 0:
        sys.exit(o.stderr[-3000:])
    raw = base.read_bytes()
    assert raw[:8] == b"_logits_"
    n_ctx, n_vocab, n_chunk = np.frombuffer(raw, dtype=np.int32, count=3, offset=8)
    off = 8 + 12
    tokens = np.frombuffer(raw, dtype=np.int32, count=n_ctx * n_chunk, offset=off)
    off += 4 * n_ctx * n_chunk
    first = n_ctx // 2
    scored = n_ctx - 1 - first
    nv = 2 * ((n_vocab + 1) // 2) + 4
    bos = None
    klds, same, nll_l, nll_g = [], 0, [], []
    for ch in range(n_chunk):
        rec = np.frombuffer(raw, dtype=np.uint16, count=scored * nv, offset=off).reshape(scored, nv)
        off += 2 * scored * nv
        hdr = rec[:, :4].copy().view(np.float32)  # scale, min_log_prob per row
        scale, minlp = hdr[:, 0:1], hdr[:, 1:2]
        lp_l = scale * rec[:, 4:4 + n_vocab].astype(np.float32) + minlp
        ids = tokens[ch * n_ctx:(ch + 1) * n_ctx].copy()
        if bos is None:
            bos = int(ids[0])  # the first chunk starts with the BOS the tokenizer put there
        ids[0] = bos
        npy = work / f"c{ch}.npy"
        pos = ",".join(str(p) for p in range(first, n_ctx - 1))
        o = subprocess.run([a.gq, "logits", a.model, "--ids", ",".join(map(str, ids)),
                            "--positions", pos, "--out", str(npy), "--threads", a.threads]
                           + (["--bf16-act"] if a.bf16_act else []),
                           capture_output=True, text=True)
        if o.returncode != 0:
            sys.exit(o.stderr)
        z = np.load(npy).astype(np.float64)
        lq = z - (z.max(1, keepdims=True) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)))
        nxt = tokens[ch * n_ctx + first + 1:(ch + 1) * n_ctx]
        mask = lp_l > -16
        pl = np.where(mask, np.exp(lp_l), 0.0)
        klds.append((pl * np.where(mask, lp_l - lq, 0.0)).sum(1))
        # llama's top-1 from its quantized log-probs (first of equals), gq's from its logits.
        same += int((lp_l.argmax(1) == z.argmax(1)).sum())
        nll_l.append(-lp_l[np.arange(scored), nxt])
        nll_g.append(-lq[np.arange(scored), nxt])
    k = np.concatenate(klds)
    n = k.size
    act = "BF16-rounded" if a.bf16_act else "exact f32"
    print(f"{Path(a.model).name}: ctx {n_ctx}, {n_chunk} chunks, {n} positions; gq with {act} "
          f"activations for BF16 weights; llama-perplexity {a.llama_args or 'defaults'}")
    print(f"  KLD(llama.cpp || gq): mean {k.mean():.3e}, median {np.median(k):.3e}, "
          f"p99 {np.percentile(k, 99):.3e}, max {k.max():.3e}")
    print(f"  same top-1: {100 * same / n:.3f} %")
    nl, ng = np.concatenate(nll_l), np.concatenate(nll_g)
    print(f"  PPL llama.cpp {np.exp(nl.mean()):.4f}, gq {np.exp(ng.mean()):.4f}; per position, "
          f"rms of the difference of the next token's -ln p: {np.sqrt(((nl - ng) ** 2).mean()):.4f}")


if __name__ == "__main__":
    main()
