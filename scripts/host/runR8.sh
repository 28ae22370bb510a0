#!/bin/bash
# Host bench (see scripts/host/setup.sh, common.sh); writes small text files to $OUT, one archive
# at the end. Eighth session, final main: more samples of issue 11's thinnest rows on another
# instance: the trained fixture's tg (Q4_K_M 1.21-1.22x so far; Q8_0, BF16 too) in 4 alternated
# rounds of 5 reps, and the 31B-like BF16 tg in 2 rounds of 3, with the vpdpbusd probe before and
# after. About 3 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
probe > $OUT/probe1.txt 2>&1
ex() { [ $1 = BF16 ] && echo --bf16-act; }
for t in Q4_K_M Q8_0 BF16; do $GQ quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M Q8_0 BF16; do
  timeout 60 $GQ bench run $W/tr-$t.gguf --pp 0 --threads 16 --peer --reps 5 --rounds 4 $(ex $t) > $OUT/run-trained-$t.txt 2>&1
  stamp "trained $t"
done
timeout 60 $W/synth --shape 31b --layers 2 --out $W/d31 >> $OUT/gen.log 2>&1
timeout 60 $GQ quantize $W/d31 -o $W/d31-BF16.gguf --type BF16 --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/d31
timeout 150 $GQ bench run $W/d31-BF16.gguf --pp 0 --threads 16 --peer --reps 3 --rounds 2 --bf16-act > $OUT/run-d31-BF16.txt 2>&1
stamp "31b BF16"
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  for f in $OUT/run-*.txt; do echo "== $(basename $f)"; tail -n 2 $f; done; cat $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
