#!/bin/bash
# Issue 11, spinning worker pool, second visit (helper s6-pool): how wide the trained fixture's
# tg spread at 16 threads is, and whether parking the workers that the steps do not need (B:
# .devcarry/pool/gqb.xz; A: gq.xz, the binary of visit 1) narrows it; llama-bench and main in
# the same run. Run from the repository root on the host; results in $OUT; about 3 minutes.
source scripts/host/setup.sh
T0=$SECONDS
NEW=$W/gqp; xz -dc .devcarry/pool/gq.xz > $NEW; chmod +x $NEW
NEWB=$W/gqb; xz -dc .devcarry/pool/gqb.xz > $NEWB; chmod +x $NEWB
MAIN=$GQ
uptime > $OUT/load.txt
for t in Q4_K_M Q8_0 BF16; do $MAIN quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
row() { # row LABEL TIMEOUT ENV BIN FILE [ARGS...]
  local label=$1 to=$2 e=$3 bin=$4 f=$5; shift 5
  echo "$label $(timeout $to env $e $bin bench run $f --reps 5 "$@" 2>&1 | grep -E '^(pp|tg)' | tr -s ' ' | tr '\n' ' ')"
}
Q=$W/tr-Q4_K_M.gguf
for r in 1 2 3; do
  timeout 60 $NEWB bench run $Q --threads 16 --peer --reps 5 > $OUT/peerB-Q4_K_M-r$r.txt 2>&1
  { row "A r$r" 30 X=0 $NEW $Q --threads 16; row "main r$r" 30 X=0 $MAIN $Q --threads 16; } >> $OUT/ab-Q4_K_M.txt 2>&1
done
for t in Q8_0 BF16; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  timeout 60 $NEWB bench run $W/tr-$t.gguf --threads 16 --peer --reps 5 $extra > $OUT/peerB-$t.txt 2>&1
  { row "A" 30 X=0 $NEW $W/tr-$t.gguf --threads 16 $extra; row "main" 30 X=0 $MAIN $W/tr-$t.gguf --threads 16 $extra; } >> $OUT/ab-$t.txt 2>&1
done
echo "peer done $((SECONDS-T0)) s" >> $OUT/times.txt
# Per-process spread of tg alone: A and B alternated, six processes each.
for i in 1 2 3 4 5 6; do row "A $i" 30 X=0 $NEW $Q --threads 16 --pp 0; row "B $i" 30 X=0 $NEWB $Q --threads 16 --pp 0; done > $OUT/spread-Q4_K_M.txt 2>&1
echo "spread done $((SECONDS-T0)) s" >> $OUT/times.txt
{ for th in 1 2 4 8 12 16; do row "B threads=$th" 30 X=0 $NEWB $Q --threads $th; done
  for th in 4 8 16; do row "A threads=$th" 30 X=0 $NEW $Q --threads $th --pp 0; done; } > $OUT/threads.txt 2>&1
echo "threads done $((SECONDS-T0)) s" >> $OUT/times.txt
# The large model: B against A (gq alone).
if [ $((SECONDS-T0)) -lt 150 ]; then
  $W/synth --shape e2b --layers 8 --out $W/e2b8 >> $OUT/gen.log 2>&1
  $MAIN quantize $W/e2b8 -o $W/e2b8-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/e2b8
  for r in 1 2; do row "B r$r" 60 X=0 $NEWB $W/e2b8-Q4_K_M.gguf --threads 16; row "A r$r" 60 X=0 $NEW $W/e2b8-Q4_K_M.gguf --threads 16; done > $OUT/e2b8.txt 2>&1
fi
echo "all done $((SECONDS-T0)) s" >> $OUT/times.txt
rm -f $W/tr-*.gguf $W/e2b8-*.gguf $NEW $NEWB
tail -n 3 $OUT/peerB-*.txt; cat $OUT/ab-*.txt $OUT/spread-*.txt $OUT/threads.txt $OUT/e2b8.txt $OUT/times.txt 2>/dev/null
