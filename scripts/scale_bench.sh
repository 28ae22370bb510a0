#!/usr/bin/env bash
# Scale bench (issue 14): a synthetic 31B-class Gemma 4 checkpoint bigger than this machine's RAM,
# quantized by gq to each of TYPES under /usr/bin/time -v, against the disk's sequential read speed
# measured in the same run. Prints, per type: wall time, MB/s, peak RSS, the ratio to the disk and
# the CPU bound (the quantizer's MB/s per CPU-second in that run, times the cores), then checks the
# output GGUF (gq inspect; for types llama.cpp knows, gguf-py's reader and llama.cpp's gguf reader
# through llama-gguf-split --dry-run) and deletes it before the next type.
#
#   scripts/scale_bench.sh [WORK_DIR] [LAYERS]
#
# WORK_DIR (default $TMPDIR or /tmp) gets gq-scale-bench/ with the checkpoint and the GGUF; both
# are deleted at the end (KEEP=1 keeps them). LAYERS (default 30) sets the size: the 31B shapes
# (hidden 5376, FFN 21504, vocab 262144) give 2.8 GB of embedding plus ~0.96 GB per layer, so 30
# layers are ~31.6 GB of BF16 and ~9.6 GB of Q4_K_M. The script refuses to start without that
# much free space plus 3 GB. TYPES (default "Q4_K_M TQT4_5_M") are quantized in turn, one output
# on disk at a time. THREADS (default: all cores) is passed to gq. GGUF_DIR puts the output
# elsewhere (e.g. /dev/shm when the disk cannot hold both; the read side is unchanged).
#
# Cold cache: before the read test and before each quantize the checkpoint is dropped from the
# page cache, with `echo 3 > /proc/sys/vm/drop_caches` where permitted, otherwise with
# posix_fadvise(DONTNEED) on each shard (dd iflag=nocache); fincore then prints how much of the
# checkpoint is still resident (it must be ~0). The default checkpoint is bigger than the RAM,
# so the page cache cannot hold it whole in any case.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}}/gq-scale-bench
layers=${2:-30}
threads=${THREADS:-0}
types=${TYPES:-Q4_K_M TQT4_5_M}
ckpt=$work/ckpt
outdir=${GGUF_DIR:-$work}
peers=${GQ_PEERS_BIN:-$HOME/.cache/gq-peers/build/bin}

if [ -n "${GGUF_DIR:-}" ]; then
  need_gb=$(echo "(2.8 + 0.96 * $layers) + 3" | bc -l)
else
  need_gb=$(echo "(2.8 + 0.96 * $layers) * 1.32 + 3" | bc -l)
fi
free_kb=$(df -Pk "$(dirname "$work")" | awk 'NR == 2 {print $4}')
free_gb=$(echo "$free_kb / 1000000" | bc -l)
if (($(echo "$free_gb < $need_gb" | bc -l))); then
  printf "scale_bench: %.1f GB free in %s, %.1f GB needed for %s layers\n" \
    "$free_gb" "$(dirname "$work")" "$need_gb" "$layers" >&2
  exit 1
fi
cleanup() {
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work" "$outdir"/gq-scale-bench-*.gguf
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work"

cargo build --release -q --bin gq --example synthetic_checkpoint
gq=target/release/gq
cores=$(nproc)

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $cores logical cores, flags:$(grep -m1 -o 'avx512_vnni\|avx512_bf16\|amx_tile' /proc/cpuinfo | tr '\n' ' ' | sed 's/^/ /')"
echo "RAM: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

t0=$(date +%s.%N)
target/release/examples/synthetic_checkpoint --shape 31b --layers "$layers" --out "$ckpt" >/dev/null
t1=$(date +%s.%N)
bytes=$(du -cb "$ckpt"/*.safetensors | tail -1 | cut -f1)
printf "checkpoint: %s layers, %d shards, %.2f GB (%.1f GiB), written in %.0f s\n" "$layers" \
  "$(ls "$ckpt"/*.safetensors | wc -l)" "$(echo "$bytes / 1000000000" | bc -l)" \
  "$(echo "$bytes / 1073741824" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"

# Drops the checkpoint from the page cache and prints what is still resident.
if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
  drop_how="drop_caches"
else
  drop_how="posix_fadvise(DONTNEED) per shard (drop_caches not permitted here)"
fi
evict() {
  sync
  if [ "$drop_how" = drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
  else
    for f in "$ckpt"/*.safetensors; do dd if="$f" iflag=nocache count=0 status=none; done
  fi
  if command -v fincore >/dev/null; then
    local res
    res=$(fincore -b -n -o RES "$ckpt"/*.safetensors | awk '{s += $1} END {print s + 0}')
    printf "  page cache dropped (%s): %.1f MB of the checkpoint still resident\n" "$drop_how" \
      "$(echo "$res / 1000000" | bc -l)"
  fi
}
evict

# The disk's sequential read speed: O_DIRECT reads of the two largest shards in 64 MiB requests,
# then buffered reads of the same (cold) shards, which is what gq's mapped reads get.
read_test() {
  local flag=$1 n=0 t0 t1
  t0=$(date +%s.%N)
  for f in $(ls -S "$ckpt"/*.safetensors | head -2); do
    dd if="$f" of=/dev/null bs=64M $flag status=none
    n=$((n + $(stat -c %s "$f")))
  done
  t1=$(date +%s.%N)
  echo "$n / ($t1 - $t0) / 1000000" | bc -l
}
disk=$(read_test iflag=direct)
read_gb=$(ls -S "$ckpt"/*.safetensors | head -2 | xargs stat -c %s | awk '{s += $1} END {print s / 1e9}')
printf "disk sequential read (O_DIRECT, 64 MiB requests, %.1f GB): %.0f MB/s\n" "$read_gb" "$disk"
evict
buffered=$(read_test "")
printf "disk sequential read (buffered, cold cache, same %.1f GB): %.0f MB/s\n" "$read_gb" "$buffered"

for ty in $types; do
  out=$outdir/gq-scale-bench-$ty.gguf
  log=$work/time-$ty.log
  evict
  echo "load average before $ty: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v "$gq" quantize "$ckpt" -o "$out" --type "$ty" --threads "$threads" -q 2>"$log" \
    || { cat "$log"; exit 1; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  # h:mm:ss or m:ss.ss → seconds
  secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  user=$(awk -F': ' '/User time/ {print $2}' "$log")
  sys=$(awk -F': ' '/System time/ {print $2}' "$log")
  cpu_pct=$(awk -F': ' '/Percent of CPU/ {print $2}' "$log")
  majflt=$(awk -F': ' '/Major \(requiring I\/O\) page faults/ {print $2}' "$log")
  mbs=$(echo "$bytes / $secs / 1000000" | bc -l)
  per_core=$(echo "$bytes / ($user + $sys) / 1000000" | bc -l)
  printf "quantize %s: %.0f s wall (user %s s, sys %s s, %s CPU, %s major faults), %.0f MB/s of BF16 read, peak RSS %.2f GiB, output %.2f GB\n" \
    "$ty" "$secs" "$user" "$sys" "$cpu_pct" "$majflt" "$mbs" "$(echo "$rss_kb / 1048576" | bc -l)" \
    "$(echo "$(stat -c %s "$out") / 1000000000" | bc -l)"
  printf "  throughput / disk read (O_DIRECT): %.2f; CPU bound: %.0f MB/s per CPU-second x %d cores = %.0f MB/s (%.2f of the disk); throughput / CPU bound: %.2f\n" \
    "$(echo "$mbs / $disk" | bc -l)" "$per_core" "$cores" "$(echo "$per_core * $cores" | bc -l)" \
    "$(echo "$per_core * $cores / $disk" | bc -l)" "$(echo "$mbs / ($per_core * $cores)" | bc -l)"
  echo "load average after $ty: $(cut -d' ' -f1-3 /proc/loadavg)"

  # The output must be a correct file, not only a fast one.
  "$gq" inspect "$out" >"$work/inspect.txt" && echo "  gq inspect reads it: $(grep -c . "$work/inspect.txt") lines"
  if ! grep -q TQ <<<"$ty"; then
    if python3 -c 'import gguf' 2>/dev/null; then
      python3 - "$out" <<'PY'
import sys, os, gguf
r = gguf.GGUFReader(sys.argv[1])
end = max(t.data_offset + t.n_bytes for t in r.tensors)
size = os.path.getsize(sys.argv[1])
assert end <= size and size - end < 64, (end, size)
print(f"  gguf-py reads it: {len(r.fields)} keys, {len(r.tensors)} tensors, data ends at {end} of {size} bytes")
PY
    else
      echo "  gguf-py missing (pip install gguf==0.19.0): not checked with it" >&2
    fi
    if [ -x "$peers/llama-gguf-split" ]; then
      "$peers/llama-gguf-split" --split --split-max-tensors 100000 --dry-run "$out" "$work/split" \
        >"$work/split.txt" 2>&1 || { cat "$work/split.txt"; exit 1; }
      echo "  llama.cpp's gguf reader (llama-gguf-split --dry-run) reads it: $(grep -m1 -o 'n_tensors = [0-9]*' "$work/split.txt" || tail -1 "$work/split.txt")"
    else
      echo "  llama-gguf-split missing (bash scripts/get_peers.sh): not checked with llama.cpp" >&2
    fi
  else
    echo "  $ty is gq's own type: llama.cpp's readers do not know it (checked by gq inspect only)"
  fi
  [ "${KEEP:-0}" = 1 ] || rm -f "$out"
done
