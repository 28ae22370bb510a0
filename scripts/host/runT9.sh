#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Ninth session. (1) Issue 12 item 3b: the TQ dots' weight prefetch at two distances
# (.devcarry/pf9/gq-tqpf.xz) against main 63753a5 (.devcarry/pf9/gq-new.xz: one T0 prefetch
# 4 KiB ahead), TQT4_5 / TQT3_375 / TQJ4_5 GEMV at 1, 4, 8 threads, 3 rounds alternated.
# (2) Issue 10: GQ_GEMV_TASKS_PER_THREAD 4 (default) against 8 with main 63753a5: the float
# GEMVs against ggml at 8 threads (2 rounds) and tg128 of the E2B-like 8-layer Q4_K_M at 16
# threads (3 rounds). About 3 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
for b in new tqpf; do xz -dc .devcarry/pf9/gq-$b.xz > $W/gq-$b; chmod +x $W/gq-$b; done
probe > $OUT/probe1.txt 2>&1
for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then order="new tqpf"; else order="tqpf new"; fi
  for b in $order; do
    echo "== round $r $b"
    timeout 60 $W/gq-$b bench kernels --type TQT4_5,TQT3_375,TQJ4_5 --threads 1,4,8 --reps 3 --no-ggml 2>&1 | grep -E '^(-- [0-9]+ thread|TQ[JT][0-9_]+ )'
  done
  stamp "tq round $r"
done > $OUT/tq.txt 2>&1
for r in 1 2; do for k in 4 8; do
  echo "== round $r tasks $k"
  GQ_GEMV_TASKS_PER_THREAD=$k timeout 70 $W/gq-new bench kernels --type F32,F16,BF16 --threads 8 --reps 5 2>&1 | grep -A4 "GEMV vs ggml"
done; stamp "floats round $r"; done > $OUT/floats.txt 2>&1
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
timeout 60 $W/gq-new quantize $W/e2b -o $W/e2b-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/e2b
for r in 1 2 3; do for k in 4 8; do
  echo "round $r tasks $k $(GQ_GEMV_TASKS_PER_THREAD=$k timeout 40 $W/gq-new bench run $W/e2b-Q4_K_M.gguf --pp 0 --tg 128 --reps 2 --threads 16 2>&1 | grep -E '^tg' | tr -s ' ')"
done; done > $OUT/tg.txt 2>&1
stamp tg
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  cat $OUT/tq.txt $OUT/floats.txt $OUT/tg.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
