#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT.
# Issue 11 speed: E2B-like 8 layers (Q4_K_M, BF16 --bf16-act, Q8_0), the trained fixture, 31B-like 2 layers; gq vs llama-bench in one invocation.
source scripts/host/setup.sh
T0=$SECONDS
uptime > $OUT/load.txt
$W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for t in Q4_K_M BF16 Q8_0; do $W/gq quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b
for t in Q4_K_M BF16 Q8_0; do $W/gq quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
echo "gen done $((SECONDS-T0)) s" >> $OUT/times.txt
for t in Q4_K_M BF16 Q8_0; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  timeout 100 $W/gq bench run $W/e2b-$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/run-e2b-$t.txt 2>&1
  echo "run e2b $t done $((SECONDS-T0)) s" >> $OUT/times.txt
done
for t in Q4_K_M BF16 Q8_0; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  timeout 40 $W/gq bench run $W/tr-$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/run-trained-$t.txt 2>&1
  echo "run trained $t done $((SECONDS-T0)) s" >> $OUT/times.txt
done
rm -f $W/e2b-*.gguf
$W/synth --shape 31b --layers 2 --out $W/d31 >> $OUT/gen.log 2>&1 && $W/gq quantize $W/d31 -o $W/d31-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/d31
left=$((575-(SECONDS-T0))); [ $left -gt 30 ] && timeout $left $W/gq bench run $W/d31-q4km.gguf --threads 16 --peer --reps 2 > $OUT/run-31b-Q4_K_M.txt 2>&1
echo "all done $((SECONDS-T0)) s" >> $OUT/times.txt
tail -n 4 $OUT/run-*.txt; cat $OUT/times.txt
