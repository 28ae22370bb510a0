#!/usr/bin/env python3
"""gq ppl against llama-perplexity on the same files, text and context (docs/eval.md).

For each type: gq quantize writes the file (byte-identical to llama-quantize's), then
  llama-perplexity -m FILE -f TEXT -c CTX -b CTX -t THREADS [--chunks N]            -> PPL
  gq ppl FILE --text TEXT --ctx CTX [--chunks N] --json                             -> PPL
and against the BF16 file:
  llama-perplexity -m BF16 ... --kl-divergence-base BASE                            (once)
  llama-perplexity -m FILE ... --kl-divergence-base BASE --kl-divergence            -> KLD, top-1
  gq ppl FILE ... --baseline BF16 --json                                            -> KLD, top-1
gq runs twice per file: with exact f32 activations for BF16 weights (its default) and with
--bf16-act (BF16-rounded activations, as llama.cpp's CPU backend computes). Prints markdown
tables (and gq's drift tables) and writes all numbers as JSON.

llama.cpp's logger writes from a thread that the process does not wait for at exit, so the last
lines (the final estimate, the KLD statistics) are often lost on a busy machine. The script
preloads a two-line shared library whose destructor sleeps 0.3 s at exit, giving that thread
time to write (it changes nothing else); a run whose final lines are still missing is repeated
(at most 10 times), as tests/common::llama_perplexity does.

Usage: python3 scripts/ppl_vs_llama.py [--ctx 512] [--chunks N] [--threads 2]
       [--types bf16,q8_0,q6_k,q4_k_m,q2_k] [--model fixtures/trained]
       [--text fixtures/trained/eval.txt] [--work /tmp/gq-ppl-vs-llama] [--json OUT]
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


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


SHIM = None


def exit_shim(work):
    """A library for LD_PRELOAD whose destructor waits 0.3 s (see the module comment)."""
    global SHIM
    src, so = work / "exit_wait.c", work / "exit_wait.so"
    src.write_text("#include <unistd.h>\n"
                   "__attribute__((destructor)) static void gq_exit_wait(void) { usleep(300000); }\n")
    o = run(["cc", "-shared", "-fPIC", "-o", so, src])
    if o.returncode == 0:
        SHIM = so
    else:
        print(f"no C compiler for the exit shim ({o.stderr.strip()}); relying on retries",
              file=sys.stderr)


def llama(bin_dir, model, text, ctx, chunks, threads, extra, need):
    cmd = [bin_dir / "llama-perplexity", "-m", model, "-f", text, "-c", ctx, "-b", ctx,
           "-t", threads]
    if chunks:
        cmd += ["--chunks", chunks]
    cmd += extra
    env = dict(os.environ)
    if SHIM:
        env["LD_PRELOAD"] = str(SHIM)
    for _ in range(10):
        t0 = time.time()
        o = run(cmd, env=env)
        secs = time.time() - t0
        log = o.stderr + o.stdout
        if o.returncode != 0:
            sys.exit(f"llama-perplexity failed: {' '.join(map(str, cmd))}\n{log[-3000:]}")
        if all(re.search(p, log) for p in need):
            return log, secs
    sys.exit(f"llama-perplexity lost its final lines 10 times: {' '.join(map(str, cmd))}")


def num(pattern, log):
    m = re.search(pattern, log)
    if not m:
        sys.exit(f"pattern {pattern!r} not found")
    return float(m.group(1))


def gq_ppl(gq, model, text, ctx, chunks, threads, extra):
    cmd = ["/usr/bin/time", "-v", gq, "ppl", model, "--text", text, "--ctx", ctx,
           "--threads", threads, "--json"] + extra
    if chunks:
        cmd += ["--chunks", chunks]
    t0 = time.time()
    o = run(cmd)
    secs = time.time() - t0
    if o.returncode != 0:
        sys.exit(f"gq ppl failed: {' '.join(map(str, cmd))}\n{o.stderr[-3000:]}")
    j = json.loads(o.stdout)
    j["max_rss_kib_time_v"] = int(num(r"Maximum resident set size \(kbytes\): (\d+)", o.stderr))
    j["wall_seconds"] = secs
    return j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", default="512")
    ap.add_argument("--chunks", default="")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--types", default="bf16,q8_0,q6_k,q4_k_m,q2_k")
    ap.add_argument("--model", default=str(ROOT / "fixtures/trained"))
    ap.add_argument("--text", default=str(ROOT / "fixtures/trained/eval.txt"))
    ap.add_argument("--work", default="/tmp/gq-ppl-vs-llama")
    ap.add_argument("--peers", default=os.environ.get("GQ_PEERS", str(Path.home() / ".cache/gq-peers")))
    ap.add_argument("--gq", default=str(ROOT / "target/release/gq"))
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    bin_dir = Path(a.peers) / "build/bin"
    if not (bin_dir / "llama-perplexity").is_file():
        sys.exit(f"{bin_dir}/llama-perplexity not found: run `bash scripts/get_peers.sh`")
    if not Path(a.gq).is_file():
        sys.exit(f"{a.gq} not found: run `cargo build --release`")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    exit_shim(work)
    cache = work / "cache"
    types = a.types.split(",")
    if types[0] != "bf16":
        sys.exit("--types must start with bf16 (the baseline)")
    name = Path(a.model).name
    files = {}
    for t in types:
        f = work / f"{name}-{t}.gguf"
        if not f.is_file():
            o = run([a.gq, "quantize", a.model, "-o", f, "--type", t, "-q"])
            if o.returncode != 0:
                sys.exit(o.stderr)
        files[t] = f
    bf16 = files["bf16"]
    base = work / f"base-{a.ctx}-{a.chunks or 'all'}.kld"
    llama(bin_dir, bf16, a.text, a.ctx, a.chunks, a.threads, ["--kl-divergence-base", base],
          [r"Final estimate"])

    rows = []
    for t in types:
        f = files[t]
        log, lsec = llama(bin_dir, f, a.text, a.ctx, a.chunks, a.threads, [],
                          [r"Final estimate: PPL = "])
        row = {
            "type": t.upper(),
            "file_bytes": f.stat().st_size,
            "llama_ppl": num(r"Final estimate: PPL = ([0-9.]+)", log),
            "llama_ppl_err": num(r"Final estimate: PPL = [0-9.]+ \+/- ([0-9.]+)", log),
            "llama_seconds": lsec,
        }
        extra = ["--cache-dir", cache]
        if t != "bf16":
            extra += ["--baseline", bf16]
        g = gq_ppl(a.gq, f, a.text, a.ctx, a.chunks, a.threads, extra)
        gb = gq_ppl(a.gq, f, a.text, a.ctx, a.chunks, a.threads, extra + ["--bf16-act"])
        row.update({
            "gq_ppl": g["ppl"], "gq_ppl_err": g["ppl_stderr"], "n_tokens": g["n_tokens"],
            "chunks": g["chunks"], "bpw": g["bpw"], "gq_seconds": g["wall_seconds"],
            "gq_peak_rss_bytes": g["peak_rss_bytes"],
            "gq_max_rss_kib_time_v": g["max_rss_kib_time_v"],
            "gq_bf16act_ppl": gb["ppl"],
        })
        row["ppl_rel_diff"] = row["gq_ppl"] / row["llama_ppl"] - 1
        row["ppl_rel_diff_bf16act"] = row["gq_bf16act_ppl"] / row["llama_ppl"] - 1
        if t != "bf16":
            log, _ = llama(bin_dir, f, a.text, a.ctx, a.chunks, a.threads,
                           ["--kl-divergence-base", base, "--kl-divergence"], [r"Same top p"])
            row.update({
                "llama_kld_mean": num(r"Mean    KLD:\s+([0-9.]+)", log),
                "llama_kld_median": num(r"Median  KLD:\s+([0-9.]+)", log),
                "llama_kld_p99": num(r"99\.0%   KLD:\s+([0-9.]+)", log),
                "llama_kld_max": num(r"Maximum KLD:\s+([0-9.]+)", log),
                "llama_rms_dp": num(r"RMS Δp    :\s+([0-9.]+)", log) / 100,
                "llama_top1": num(r"Same top p:\s+([0-9.]+)", log) / 100,
                "llama_ppl_base": num(r"Mean PPL\(base\)\s+:\s+([0-9.]+)", log),
            })
            for tag, j in (("gq", g), ("gq_bf16act", gb)):
                k = j["kld"]
                row.update({
                    f"{tag}_kld_mean": k["kld_mean"], f"{tag}_kld_median": k["kld_median"],
                    f"{tag}_kld_p99": k["kld_p99"], f"{tag}_kld_max": k["kld_max"],
                    f"{tag}_rms_dp": k["rms_dp"], f"{tag}_top1": k["top1_agreement"],
                    f"{tag}_ppl_base": k["ppl_base"],
                })
                row[f"{tag}_kld_rel_diff"] = row[f"{tag}_kld_mean"] / row["llama_kld_mean"] - 1
                row[f"{tag}_top1_diff_points"] = 100 * (row[f"{tag}_top1"] - row["llama_top1"])
            row["cache"] = g["cache"]
            row["drift"] = g["drift"]
        rows.append(row)
        print(f"{t}: done", file=sys.stderr)

    print(f"ctx {a.ctx}, {rows[0]['chunks']} chunks, {rows[0]['n_tokens']} scored tokens, "
          f"{a.threads} threads\n")
    print("| type | bpw | llama PPL | gq PPL | Δ | gq PPL, BF16 act | Δ |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['type']} | {r['bpw']:.3f} | {r['llama_ppl']:.4f} | {r['gq_ppl']:.4f} | "
              f"{100 * r['ppl_rel_diff']:+.3f} % | {r['gq_bf16act_ppl']:.4f} | "
              f"{100 * r['ppl_rel_diff_bf16act']:+.3f} % |")
    print("\nAgainst the BF16 file (gq: exact f32 activations / `--bf16-act`):\n")
    print("| type | llama KLD | gq KLD | Δ | gq KLD, BF16 act | Δ | llama top-1 % | gq top-1 % | "
          "Δ points | gq top-1 %, BF16 act | Δ points | llama / gq KLD p99 | llama / gq RMS Δp % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "llama_kld_mean" not in r:
            continue
        print(f"| {r['type']} | {r['llama_kld_mean']:.6f} | {r['gq_kld_mean']:.6f} | "
              f"{100 * r['gq_kld_rel_diff']:+.2f} % | {r['gq_bf16act_kld_mean']:.6f} | "
              f"{100 * r['gq_bf16act_kld_rel_diff']:+.2f} % | {100 * r['llama_top1']:.3f} | "
              f"{100 * r['gq_top1']:.3f} | {r['gq_top1_diff_points']:+.3f} | "
              f"{100 * r['gq_bf16act_top1']:.3f} | {r['gq_bf16act_top1_diff_points']:+.3f} | "
              f"{r['llama_kld_p99']:.6f} / {r['gq_kld_p99']:.6f} | "
              f"{100 * r['llama_rms_dp']:.3f} / {100 * r['gq_rms_dp']:.3f} |")
    print("\n| type | file bytes | gq peak RSS (getrusage) | /usr/bin/time max RSS | gq s | "
          "llama-perplexity s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['type']} | {r['file_bytes']} | {r['gq_peak_rss_bytes'] / 2**20:.1f} MiB | "
              f"{r['gq_max_rss_kib_time_v'] / 1024:.1f} MiB | {r['gq_seconds']:.1f} | "
              f"{r['llama_seconds']:.1f} |")
    for r in rows:
        if "drift" not in r:
            continue
        c = r["cache"]
        print(f"\n{r['type']} drift along the context (gq; baseline records: "
              f"{c['listed_mean']:.0f} tokens per position, unlisted mass ≤ {c['record_tail']}, "
              f"cache {c['file_bytes'] / 2**20:.1f} MiB):\n")
        print("| positions | tokens | PPL | KLD mean | KLD p99 | top-1 % | RMS Δp % |")
        print("|---|---|---|---|---|---|---|")
        for b in r["drift"]:
            print(f"| {b['first_pos']}–{b['last_pos']} | {b['n']} | {b['ppl']:.4f} | "
                  f"{b['kld_mean']:.6f} | {b['kld_p99']:.6f} | {100 * b['top1_agreement']:.3f} | "
                  f"{100 * b['rms_dp']:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"ctx": a.ctx, "chunks": a.chunks,
                                            "threads": a.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
