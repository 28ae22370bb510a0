#!/usr/bin/env bash
# gq vs llama.cpp on the same cores in one run, for llama-quantize's file types:
#  1. quantize only: `gq quantize CKPT --type T` (safetensors BF16 -> T) vs `llama-quantize` on the
#     BF16 GGUF of the same checkpoint (made by gq, byte-identical to the converter's), same thread
#     count; prints both times, MB/s of BF16 input and gq's speed-up; checks the outputs are equal.
#  2. end to end (GQ_CONVERTER_PYTHON set to a Python with torch + transformers):
#     convert_hf_to_gguf.py --outtype bf16 + llama-quantize vs gq quantize, one command each.
# Usage: scripts/bench_vs_llama.sh [CKPT] [TYPE] [THREADS]   (default: the 2.3 GB synthetic, Q4_K_M, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-${GQ_SYNTH:-$HOME/.cache/gq-bench/synthetic-2g}}
TY=${2:-Q4_K_M}
TH=${3:-2}
PEERS=${GQ_PEERS:-$HOME/.cache/gq-peers}
LQ="$PEERS/build/bin/llama-quantize"
LLAMA="$PEERS/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"
W=${GQ_BENCH_DIR:-/tmp/gq-bench-vs}
mkdir -p "$W"
[ -x "$LQ" ] || { echo "llama-quantize missing: run scripts/get_peers.sh" >&2; exit 1; }
[ -f "$CKPT/config.json" ] || python3 scripts/make_synthetic.py "$CKPT" >/dev/null
cargo build --release -q
G=target/release/gq
mb=$(du -cb "$CKPT"/*.safetensors | tail -1 | awk '{print $1/1e6}')
$G quantize "$CKPT" -o "$W/bf16.gguf" --type bf16 -q
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
tg=$(t $G quantize "$CKPT" -o "$W/gq.gguf" --type "$TY" --threads "$TH" -q)
tl=$(t "$LQ" "$W/bf16.gguf" "$W/lq.gguf" "$TY" "$TH")
same=$(python3 tests/py/compare_gguf.py "$W/gq.gguf" "$W/lq.gguf" --ignore-key general.name | tail -1)
printf "%s, %s, %s threads, %.0f MB of BF16\n" "$(basename "$CKPT")" "$TY" "$TH" "$mb"
printf "  gq quantize (safetensors -> %s): %7.2f s  %6.0f MB/s\n" "$TY" "$tg" "$(echo "$mb/$tg" | bc -l)"
printf "  llama-quantize (BF16 GGUF -> %s): %7.2f s  %6.0f MB/s\n" "$TY" "$tl" "$(echo "$mb/$tl" | bc -l)"
printf "  gq / llama-quantize speed: %.2fx   (%s)\n" "$(echo "$tl/$tg" | bc -l)" "$same"
if [ -n "${GQ_CONVERTER_PYTHON:-}" ]; then
  tc=$(t env PYTHONPATH="$LLAMA/gguf-py" "$GQ_CONVERTER_PYTHON" "$LLAMA/convert_hf_to_gguf.py" "$CKPT" --outtype bf16 --outfile "$W/conv.gguf")
  tl2=$(t "$LQ" "$W/conv.gguf" "$W/lq2.gguf" "$TY" "$TH")
  printf "  end to end: convert_hf_to_gguf.py %.2f s + llama-quantize %.2f s = %.2f s vs gq %.2f s: %.2fx\n" \
    "$tc" "$tl2" "$(echo "$tc+$tl2" | bc -l)" "$tg" "$(echo "($tc+$tl2)/$tg" | bc -l)"
fi
rm -f "$W"/*.gguf
