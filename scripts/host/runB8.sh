#!/bin/bash
# Host bench (see scripts/host/setup.sh; also carries .devcarry/probe.xz, the compiled
# scripts/host/vnni_probe.c); writes small text files to $OUT, one archive at the end.
# Eighth session, issue 11: the one row not met (31B-like 2 layers, BF16 --bf16-act, tg128:
# 1.17x in one round of 2 reps last session) measured in 3 alternated rounds of 3 reps, with the
# 16-thread read probe before and after and the vpdpbusd probe; then the trained fixture's tg
# (the instance-dependent rows) in 2 rounds. About 5 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
cat /sys/kernel/mm/transparent_hugepage/enabled >> $OUT/load.txt; df -T /tmp >> $OUT/load.txt; uname -r >> $OUT/load.txt
probe > $OUT/probe1.txt 2>&1
timeout 60 $W/synth --shape 31b --layers 2 --out $W/d31 > $OUT/gen.log 2>&1
timeout 60 $GQ quantize $W/d31 -o $W/d31-BF16.gguf --type BF16 --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/d31
stamp gen
bw() { timeout 60 $GQ bench kernels --type BF16 --threads 16 --reps 3 --no-ggml > $OUT/bw$1.txt 2>&1; }
bw 1; stamp bw1
timeout 200 $GQ bench run $W/d31-BF16.gguf --pp 0 --threads 16 --peer --reps 3 --rounds 3 --bf16-act > $OUT/run-31b-BF16.txt 2>&1
stamp 31b
grep -E "FilePmd" /proc/meminfo >> $OUT/load.txt
bw 2; stamp bw2
for t in Q4_K_M Q8_0; do $GQ quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M Q8_0; do
  timeout 40 $GQ bench run $W/tr-$t.gguf --pp 0 --threads 16 --peer --reps 5 --rounds 2 > $OUT/run-trained-$t.txt 2>&1
done
stamp trained
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; cat $OUT/times.txt; for f in $OUT/run-*.txt; do echo "== $(basename $f)"; tail -n 4 $f; done
  for f in $OUT/bw*.txt; do echo "== $f"; grep -iE "bw|GB/s" $f | tail -4; done
  echo "probe1: $(awk '{print $3}' $OUT/probe1.txt | tr '\n' ' ')"; echo "probe2: $(awk '{print $3}' $OUT/probe2.txt | tr '\n' ' ')"; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
