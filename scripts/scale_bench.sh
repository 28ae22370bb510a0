#!/usr/bin/env bash
# Scale bench (issue 14): a synthetic 31B-class Gemma 4 checkpoint bigger than this machine's RAM,
# quantized to Q4_K_M by gq under /usr/bin/time -v, against the disk's sequential read speed
# measured in the same run. Prints wall time, MB/s, peak RSS and the throughput / disk ratio.
#
#   scripts/scale_bench.sh [WORK_DIR] [LAYERS]
#
# WORK_DIR (default $TMPDIR or /tmp) gets gq-scale-bench/ with the checkpoint and the GGUF; both
# are deleted at the end (KEEP=1 keeps them). LAYERS (default 29) sets the size: the 31B shapes
# (hidden 5376, FFN 21504, vocab 262144) give 2.8 GB of embedding plus ~0.96 GB per layer, so 29
# layers are ~30.7 GB of BF16 and ~9.3 GB of Q4_K_M. The script refuses to start without that
# much free space plus 3 GB. THREADS (default: all cores) is passed to gq. GGUF_DIR puts the
# output elsewhere (e.g. /dev/shm when the disk cannot hold both; the read side is unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-${TMPDIR:-/tmp}}/gq-scale-bench
layers=${2:-29}
threads=${THREADS:-0}
ckpt=$work/ckpt
out=${GGUF_DIR:-$work}/gq-scale-bench-Q4_K_M.gguf

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
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work" "$out"
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work"

cargo build --release -q --bin gq --example synthetic_checkpoint
gq=target/release/gq

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) logical cores"
echo "RAM: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"

t0=$(date +%s.%N)
target/release/examples/synthetic_checkpoint --shape 31b --layers "$layers" --out "$ckpt" >/dev/null
t1=$(date +%s.%N)
bytes=$(du -cb "$ckpt"/*.safetensors | tail -1 | cut -f1)
printf "checkpoint: %s layers, %d shards, %.2f GB, written in %.0f s\n" "$layers" \
  "$(ls "$ckpt"/*.safetensors | wc -l)" "$(echo "$bytes / 1000000000" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"

# Drop the checkpoint from the page cache (dd iflag=nocache count=0 on each shard), so neither
# the read test nor gq finds it in RAM.
evict() { for f in "$ckpt"/*.safetensors; do dd if="$f" iflag=nocache count=0 status=none; done; }
sync
evict

# The disk's sequential read speed: O_DIRECT reads of the two largest shards in 64 MiB requests.
read_bytes=0
t0=$(date +%s.%N)
for f in $(ls -S "$ckpt"/*.safetensors | head -2); do
  dd if="$f" of=/dev/null bs=64M iflag=direct status=none
  read_bytes=$((read_bytes + $(stat -c %s "$f")))
done
t1=$(date +%s.%N)
disk=$(echo "$read_bytes / ($t1 - $t0) / 1000000" | bc -l)
printf "disk sequential read (O_DIRECT, %.1f GB): %.0f MB/s\n" "$(echo "$read_bytes / 1000000000" | bc -l)" "$disk"
evict

log=$work/time.log
/usr/bin/time -v "$gq" quantize "$ckpt" -o "$out" --type Q4_K_M --threads "$threads" -q 2>"$log"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
# h:mm:ss or m:ss.ss → seconds
secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
user=$(awk -F': ' '/User time/ {print $2}' "$log")
sys=$(awk -F': ' '/System time/ {print $2}' "$log")
mbs=$(echo "$bytes / $secs / 1000000" | bc -l)
printf "quantize Q4_K_M: %.0f s wall (user %s s, sys %s s), %.0f MB/s of BF16 read, peak RSS %.2f GiB, output %.2f GB\n" \
  "$secs" "$user" "$sys" "$mbs" "$(echo "$rss_kb / 1048576" | bc -l)" "$(echo "$(stat -c %s "$out") / 1000000000" | bc -l)"
printf "throughput / disk read: %.2f\n" "$(echo "$mbs / $disk" | bc -l)"
"$gq" inspect "$out" >/dev/null && echo "output: gq inspect reads it"
