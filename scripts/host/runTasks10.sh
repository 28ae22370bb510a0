#!/bin/bash
# tasks10 (tenth session, issue 10 "GEMV >= 1.0x ggml for every type"): the GEMV's size-dependent
# task count (branch s10-tasks, gq-new: up to 8 row ranges per thread where every range still
# holds >= 256 KiB of weights, else 4 per thread as before) against main cee04d7 (gq-main: 4 per
# thread for every matrix). Why: with GQ_GEMV_TASKS_PER_THREAD=8 the float GEMVs were >= 1.03x
# ggml in 12/12 type-rounds (4: 10/12), but 8 for every matrix was feared to cost small models.
# Measures, main/new alternated (order flipped each round):
#  (1) 5 rounds: `gq bench kernels --type F32,F16,BF16 --threads 8,16 --reps 5` = the float
#      GEMVs against ggml's test-backend-ops MUL_MAT 4096 x 14336 (8 threads, half the host)
#      and the 384 MiB GEMV tables at 8 and 16 threads;
#  (2) 4 rounds: tg128 of the E2B-like 8-layer Q4_K_M at 16 and 8 threads: main, new, and new
#      with GQ_GEMV_TASKS_PER_THREAD=8 (8 for every matrix, "new8").
# About 3-4 minutes. LOCALTEST=1 OUT=/tmp/x: a short dry run on the build machine.
N=.devcarry/tasks10
if [ -n "$LOCALTEST" ]; then
  W=/tmp/kern/w; mkdir -p $W; export GQ_PEERS=$HOME/.cache/gq-peers
  cp /tmp/kern/synth $W/synth; TB=2; TA=1; FR=1; TR=1; LAYERS=2; KT=1,2
else
  source scripts/host/setup.sh; TB=16; TA=8; FR=5; TR=4; LAYERS=8; KT=8,16
fi
source scripts/host/common.sh
for b in main new; do xz -dc $N/gq-$b.xz > $W/gq-$b; chmod +x $W/gq-$b; done
[ -n "$LOCALTEST" ] || probe > $OUT/probe1.txt 2>&1
for r in $(seq 1 $FR); do
  if [ $((r % 2)) = 1 ]; then order="main new"; else order="new main"; fi
  for b in $order; do
    echo "== round $r $b"
    timeout 90 $W/gq-$b bench kernels --type F32,F16,BF16 --threads $KT --reps 5 2>&1 \
      | grep -E '^(-- |type |F32 |F16 |BF16 )'
  done
  stamp "floats round $r"
done > $OUT/floats.txt 2>&1
timeout 60 $W/synth --shape e2b --layers $LAYERS --out $W/e2b > $OUT/gen.log 2>&1
timeout 90 $W/gq-main quantize $W/e2b -o $W/e2b-Q4_K_M.gguf --type Q4_K_M --threads $TB -q >> $OUT/gen.log 2>&1
rm -rf $W/e2b
stamp gen
tg() { timeout 40 env $3 $W/gq-$1 bench run $W/e2b-Q4_K_M.gguf --pp 0 --tg 128 --reps 2 --threads $2 2>&1 | grep -E '^tg' | tr -s ' '; }
for r in $(seq 1 $TR); do
  if [ $((r % 2)) = 1 ]; then order="main new new8"; else order="new8 new main"; fi
  for t in $TB $TA; do for b in $order; do
    case $b in new8) e="GQ_GEMV_TASKS_PER_THREAD=8"; bin=new ;; *) e="GQ_X=0"; bin=$b ;; esac
    echo "round $r threads $t $b $(tg $bin $t $e)"
  done; done
  stamp "tg round $r"
done > $OUT/tg.txt 2>&1
[ -n "$LOCALTEST" ] || probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt
  [ -n "$LOCALTEST" ] || echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  awk '/^== /{h="r"$3" "$4; next} /^-- [0-9]+ threads/{sec="t"$2; next} /^-- GEMV vs/{sec="ggml"; next}
    /^type/{next} /^(F32|F16|BF16) /{ v = (sec=="ggml") ? $4"x" : $3"("$NF")"; k=h" "sec
    if (!(k in line)) order[n++]=k; line[k]=line[k]" "$1" "v }
    END { for (i=0; i<n; i++) print order[i]":"line[order[i]] }' $OUT/floats.txt; echo
  cat $OUT/tg.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
