#!/usr/bin/env bash
# Bench of `gq quantize`: the largest fixture and a >= 2 GB synthetic checkpoint (made once by
# scripts/make_synthetic.py, cached), BF16 and Q8_0, 1 and 2 threads. For each run: MB/s of
# checkpoint read, peak RSS (from /usr/bin/time), and the ratio to a baseline measured in the same
# run: a plain copy of the same safetensors bytes to a file on the same disk (the I/O bound of a
# streaming pass). With GQ_CONVERTER_PYTHON set to a Python that has torch + transformers, also
# times llama.cpp's convert_hf_to_gguf.py on the same input and prints gq's speed-up.
# Usage: scripts/bench_quantize.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/gq-bench}
SYN=${GQ_SYNTH:-$HOME/.cache/gq-bench/synthetic-2g}
mkdir -p "$OUT"
cargo build --release -q
[ -f "$SYN/config.json" ] || python3 scripts/make_synthetic.py "$SYN" >/dev/null
LLAMA=${GQ_PEERS:-$HOME/.cache/gq-peers}/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp
printf "%-28s %-5s %7s %9s %9s %10s %12s\n" input type threads seconds "MB/s" "peak RSS" "vs copy"
for src in fixtures/trained "$SYN"; do
  mb=$(du -cb "$src"/*.safetensors | tail -1 | awk '{print $1/1e6}')
  t0=$(date +%s.%N); cat "$src"/*.safetensors > "$OUT/copy.bin"; sync "$OUT/copy.bin"; t1=$(date +%s.%N)
  copy=$(echo "$mb / ($t1 - $t0)" | bc -l); rm -f "$OUT/copy.bin"
  for ty in BF16 Q8_0; do
    for th in 1 2; do
      /usr/bin/time -f "%M %e" -o "$OUT/time.txt" target/release/gq quantize "$src" -o "$OUT/out.gguf" --type $ty --threads $th -q
      read -r rss_kb secs < "$OUT/time.txt"
      rate=$(echo "$mb / $secs" | bc -l)
      printf "%-28s %-5s %7s %9.2f %9.0f %7.0f MB %11.2fx\n" "$(basename "$src") ($(printf %.0f "$mb") MB)" $ty $th "$secs" "$rate" "$(echo "$rss_kb/1024" | bc -l)" "$(echo "$rate / $copy" | bc -l)"
      rm -f "$OUT/out.gguf"
    done
    if [ -n "${GQ_CONVERTER_PYTHON:-}" ]; then
      t0=$(date +%s.%N)
      PYTHONPATH="$LLAMA/gguf-py" "$GQ_CONVERTER_PYTHON" "$LLAMA/convert_hf_to_gguf.py" "$src" --outtype "${ty,,}" --outfile "$OUT/conv.gguf" >/dev/null 2>&1
      t1=$(date +%s.%N)
      /usr/bin/time -f "%M %e" -o "$OUT/time.txt" target/release/gq quantize "$src" -o "$OUT/out.gguf" --type $ty -q
      read -r rss_kb secs < "$OUT/time.txt"
      printf "  convert_hf_to_gguf.py %s: %.2f s; gq (all cores) %.2f s: %.1fx faster\n" $ty "$(echo "$t1 - $t0" | bc -l)" "$secs" "$(echo "($t1 - $t0) / $secs" | bc -l)"
      rm -f "$OUT/conv.gguf" "$OUT/out.gguf"
    fi
  done
  echo "  copy of the same bytes: $(printf %.0f "$copy") MB/s"
done
