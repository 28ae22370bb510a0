#!/bin/bash
# gemm helper (issue 10 item 2: GEMM n = 512 Q4_K/Q6_K >= 1.5x ggml), run 1 of 3.
# Why does the tiled GEMM reach 23-31 % of the vpdpbusd peak at 8 threads here when one core
# of the same model locally runs it at ~53 %? Measures (1) a 512-bit vpdpbusd throughput loop
# (scripts/host/vnni_probe.c, 12 chains) and the clock (dependent add chain) on each vCPU alone, on vCPU 0 + j
# at once (are vCPUs hyperthread siblings?) and on 8 / 16 vCPUs at once (all-core clock);
# (2) the GEMM (gq bench kernels --gemm, 8 and 16 threads) of main's gq and of this branch's,
# whose GEMM split hands out 4 row tasks per thread from the pool's counter (GQ_GEMM_TASKS=1
# gives main's one range per thread), alternated, ggml's MUL_MAT (8 threads) in two runs.
source .devcarry/setup.sh
T0=$SECONDS
left() { echo $((230 - (SECONDS - T0))); }
D=.devcarry/gemm; B=$(mktemp -d)
xz -dc $D/gq-gemm.xz > $B/gq; xz -dc $D/probe.xz > $B/p; xz -dc $D/gemmbench.xz > $B/gb; chmod +x $B/gq $B/p $B/gb
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:|Thread|Core'; } > $OUT/load.txt 2>&1
N=30000000
{ for i in $(seq 0 15); do echo "alone $i: $(timeout 5 $B/p $N $i)"; done
  for j in $(seq 1 15); do
    (timeout 5 $B/p $N 0 > $B/a & timeout 5 $B/p $N $j > $B/b; wait)
    echo "pair 0+$j: $(cat $B/a) | $(cat $B/b)"
  done
  for m in 8 16; do
    for i in $(seq 0 $((m-1))); do timeout 10 $B/p $N $i > $B/o$i & done; wait
    for i in $(seq 0 $((m-1))); do echo "all$m cpu $i: $(cat $B/o$i)"; done
  done
} > $OUT/probe.txt 2>&1
echo "probe $((SECONDS-T0)) s" >> $OUT/times.txt
# kernels/examples/gemmbench (this branch): GFLOP/s wall and per CPU-second per thread, 4096 rows.
{ timeout 30 $B/gb Q4_K,Q6_K,Q8_0 1 512 4096 3
  for t in 8 16; do for e in 1 4; do echo "GQ_GEMM_TASKS=$e"; GQ_GEMM_TASKS=$e timeout 20 $B/gb Q4_K,Q6_K $t 512 4096 5; done; done
} > $OUT/gemmbench.txt 2>&1
echo "gemmbench $((SECONDS-T0)) s" >> $OUT/times.txt
g() { # g LABEL ENV BIN [FLAGS]
  local label=$1 e=$2 bin=$3; shift 3
  local l=$(left); [ $l -gt 60 ] && l=60
  [ $l -lt 15 ] && { echo "== $label: skipped (time)"; return; }
  echo "== $label ($(date -u +%T))"
  timeout $l env $e $bin bench kernels --no-gemv --gemm --threads 8,16 --type Q4_K,Q6_K,Q8_0 "$@" 2>&1 | sed -n '/^-- GEMM/,$p'
}
{ g "main, ggml" X=0 $GQ
  g "new (4 tasks/thread), ggml" X=0 $B/gq
  g "new GQ_GEMM_TASKS=1" GQ_GEMM_TASKS=1 $B/gq --no-ggml
  g "main" X=0 $GQ --no-ggml
  g "new (4 tasks/thread)" X=0 $B/gq --no-ggml
  g "new GQ_GEMM_TASKS=1" GQ_GEMM_TASKS=1 $B/gq --no-ggml
} > $OUT/gemm.txt 2>&1
echo "gemm $((SECONDS-T0)) s" >> $OUT/times.txt
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; grep -E "alone|pair" $OUT/probe.txt | awk '{print}' ; grep all $OUT/probe.txt | head -32; cat $OUT/gemmbench.txt $OUT/gemm.txt $OUT/times.txt; } > $OUT/summary.txt
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
