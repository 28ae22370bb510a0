#!/bin/bash
# Issue 11 small-model scaling (helper s4-small): trained fixture Q4_K_M / Q8_0 / BF16 vs
# llama-bench at 16 threads, then a sweep of the parallel-task knobs (gq only). About 4 min.
source scripts/host/setup.sh
T0=$SECONDS
uptime > $OUT/load.txt
for t in Q4_K_M Q8_0 BF16; do $W/gq quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
echo "gen done $((SECONDS-T0)) s" >> $OUT/times.txt
for t in Q4_K_M Q8_0 BF16; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  timeout 40 $W/gq bench run $W/tr-$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/peer-$t.txt 2>&1
  echo "peer $t done $((SECONDS-T0)) s" >> $OUT/times.txt
done
# One line per setting: knob=value, then the pp512 and tg128 lines (gq only, 16 threads).
b() { # b LABEL FILE [ENV...]
  local label=$1 f=$2; shift 2
  echo "$label $(env "$@" timeout 20 $W/gq bench run $f --threads 16 --reps 3 2>&1 | grep -E '^(pp|tg)' | awk '{print $1, $2, $3, $4}' | tr '\n' ' ')"
}
Q=$W/tr-Q4_K_M.gguf
{
  b default $Q
  for v in 262144 4194304 16777216; do b GQ_MIN_TASK_MACS=$v $Q GQ_MIN_TASK_MACS=$v; done
  for v in 16 32 128; do b GQ_GEMM_MIN_ROWS=$v $Q GQ_GEMM_MIN_ROWS=$v; done
  for v in 4096 65536 262144; do b GQ_MIN_TASK_ELEMS=$v $Q GQ_MIN_TASK_ELEMS=$v; done
  for v in 16384 262144 1048576 4194304; do b GQ_MIN_TASK_BYTES=$v $Q GQ_MIN_TASK_BYTES=$v; done
  b "bytes=1M,elems=64K" $Q GQ_MIN_TASK_BYTES=1048576 GQ_MIN_TASK_ELEMS=65536
  b "bytes=1M,elems=64K,macs=4M" $Q GQ_MIN_TASK_BYTES=1048576 GQ_MIN_TASK_ELEMS=65536 GQ_MIN_TASK_MACS=4194304
} > $OUT/sweep-Q4_K_M.txt 2>&1
echo "sweep done $((SECONDS-T0)) s" >> $OUT/times.txt
{
  for th in 1 2 4 8 16; do echo "threads=$th $(timeout 20 $W/gq bench run $Q --threads $th --reps 3 2>&1 | grep -E '^(pp|tg)' | awk '{print $1, $2, $3, $4}' | tr '\n' ' ')"; done
  b default-Q8_0 $W/tr-Q8_0.gguf
  b bytes=1M-Q8_0 $W/tr-Q8_0.gguf GQ_MIN_TASK_BYTES=1048576
} > $OUT/threads.txt 2>&1
echo "threads done $((SECONDS-T0)) s" >> $OUT/times.txt
# The big-model guard: E2B-like 2 layers Q4_K_M, default vs the largest GEMV minimum.
if [ $((SECONDS-T0)) -lt 170 ]; then
  $W/synth --shape e2b --layers 2 --out $W/e2bs >> $OUT/gen.log 2>&1 && $W/gq quantize $W/e2bs -o $W/e2bs.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/e2bs
  { b e2b-default $W/e2bs.gguf; b e2b-bytes=1M $W/e2bs.gguf GQ_MIN_TASK_BYTES=1048576; b e2b-macs=4M $W/e2bs.gguf GQ_MIN_TASK_MACS=4194304; } > $OUT/e2b.txt 2>&1
  rm -f $W/e2bs.gguf
fi
echo "all done $((SECONDS-T0)) s" >> $OUT/times.txt
tail -n 3 $OUT/peer-*.txt; cat $OUT/sweep-Q4_K_M.txt $OUT/threads.txt $OUT/e2b.txt $OUT/times.txt 2>/dev/null
