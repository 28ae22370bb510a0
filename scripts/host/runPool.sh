#!/bin/bash
# Issue 11, spinning worker pool (docs/runner.md, "The worker pool"). Run from the repository
# root on the host; results as small text files in $OUT; about 4 minutes. NEW = the pool's gq
# (strip + xz in .devcarry/pool/gq.xz), MAIN = the gq before it ($GQ of scripts/host/setup.sh).
source scripts/host/setup.sh
T0=$SECONDS
NEW=$W/gqp; xz -dc .devcarry/pool/gq.xz > $NEW; chmod +x $NEW
MAIN=$GQ
uptime > $OUT/load.txt; nproc >> $OUT/load.txt
for t in Q4_K_M Q8_0 BF16; do $MAIN quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
$W/synth --shape e2b --layers 8 --out $W/e2b8 >> $OUT/gen.log 2>&1
$MAIN quantize $W/e2b8 -o $W/e2b8-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/e2b8
ls -la $W/*.gguf >> $OUT/gen.log 2>&1
echo "gen done $((SECONDS-T0)) s" >> $OUT/times.txt
# One line: label, pp512 and tg128 of gq (t/s ± sd), and llama-bench's with --peer.
row() { # row LABEL TIMEOUT ENV(VAR=VALUE or X=0) BIN FILE [ARGS...]
  local label=$1 to=$2 e=$3 bin=$4 f=$5; shift 5
  echo "$label $(timeout $to env $e $bin bench run $f --reps 5 "$@" 2>&1 | grep -E '^(pp|tg)' | tr -s ' ' | tr '\n' ' ')"
}
# Trained fixture at 16 threads: new with llama-bench, main gq-only, two rounds alternated.
for t in Q4_K_M Q8_0 BF16; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  for r in 1 2; do
    timeout 60 $NEW bench run $W/tr-$t.gguf --threads 16 --peer --reps 5 $extra > $OUT/peer-trained-$t-r$r.txt 2>&1
    row "main r$r" 30 X=0 $MAIN $W/tr-$t.gguf --threads 16 $extra >> $OUT/main-trained-$t.txt 2>&1
  done
  echo "trained $t done $((SECONDS-T0)) s" >> $OUT/times.txt
done
# E2B-like 8 layers Q4_K_M at 16 threads: new with llama-bench, main, then both gq-only again.
timeout 90 $NEW bench run $W/e2b8-Q4_K_M.gguf --threads 16 --peer --reps 5 > $OUT/peer-e2b8-Q4_K_M.txt 2>&1
echo "e2b peer done $((SECONDS-T0)) s" >> $OUT/times.txt
{ row "main r1" 60 X=0 $MAIN $W/e2b8-Q4_K_M.gguf --threads 16
  row "new r2" 60 X=0 $NEW $W/e2b8-Q4_K_M.gguf --threads 16
  row "main r2" 60 X=0 $MAIN $W/e2b8-Q4_K_M.gguf --threads 16; } > $OUT/ab-e2b8-Q4_K_M.txt 2>&1
echo "e2b ab done $((SECONDS-T0)) s" >> $OUT/times.txt
# Thread scaling, trained Q4_K_M, new and main alternated.
Q=$W/tr-Q4_K_M.gguf
for th in 1 4 8; do row "new threads=$th" 30 X=0 $NEW $Q --threads $th; row "main threads=$th" 30 X=0 $MAIN $Q --threads $th; done > $OUT/threads-trained-Q4_K_M.txt 2>&1
echo "threads done $((SECONDS-T0)) s" >> $OUT/times.txt
# Pool knobs (new only, 16 threads): spin before parking, pure spin before yielding, and the
# GEMV minimum task now that a hand-off is cheap.
{ row "default" 30 X=0 $NEW $Q --threads 16
  row "GQ_SPIN_US=0(park at once)" 30 GQ_SPIN_US=0 $NEW $Q --threads 16
  row "GQ_PURE_SPIN_US=0" 30 GQ_PURE_SPIN_US=0 $NEW $Q --threads 16
  row "GQ_PURE_SPIN_US=1000" 30 GQ_PURE_SPIN_US=1000 $NEW $Q --threads 16
  row "GQ_MIN_TASK_BYTES=16384" 30 GQ_MIN_TASK_BYTES=16384 $NEW $Q --threads 16
  row "GQ_MIN_TASK_BYTES=32768" 30 GQ_MIN_TASK_BYTES=32768 $NEW $Q --threads 16
  row "GQ_MIN_TASK_ELEMS=4096" 30 GQ_MIN_TASK_ELEMS=4096 $NEW $Q --threads 16
  row "default again" 30 X=0 $NEW $Q --threads 16
  row "Q8_0 GQ_MIN_TASK_BYTES=16384" 30 GQ_MIN_TASK_BYTES=16384 $NEW $W/tr-Q8_0.gguf --threads 16
  row "Q8_0 default" 30 X=0 $NEW $W/tr-Q8_0.gguf --threads 16
  row "E2B GQ_MIN_TASK_BYTES=16384" 60 GQ_MIN_TASK_BYTES=16384 $NEW $W/e2b8-Q4_K_M.gguf --threads 16 --pp 0
  row "E2B GQ_PURE_SPIN_US=0" 60 GQ_PURE_SPIN_US=0 $NEW $W/e2b8-Q4_K_M.gguf --threads 16 --pp 0
} > $OUT/knobs.txt 2>&1
echo "all done $((SECONDS-T0)) s" >> $OUT/times.txt
rm -f $W/tr-*.gguf $W/e2b8-*.gguf $NEW
tail -n 3 $OUT/peer-*.txt; cat $OUT/main-*.txt $OUT/ab-*.txt $OUT/threads-*.txt $OUT/knobs.txt $OUT/times.txt
