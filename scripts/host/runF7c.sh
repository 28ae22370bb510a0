#!/bin/bash
# Issue 11, seventh session: the 31B-like rows not measured before: the 2-layer 31B-like
# synthetic at BF16 (--bf16-act) and Q8_0, `gq bench run --threads 16 --peer --reps 2` (gq and
# llama-bench in the same invocation). About 2.5 minutes; every step time-limited.
source scripts/host/setup.sh
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
timeout 60 $W/synth --shape 31b --layers 2 --out $W/d31 > $OUT/gen.log 2>&1
for t in Q8_0 BF16; do timeout 40 $GQ quantize $W/d31 -o $W/d31-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/d31
stamp gen
timeout 70 $GQ bench run $W/d31-Q8_0.gguf --threads 16 --peer --reps 2 > $OUT/run-31b-Q8_0.txt 2>&1
stamp Q8_0
timeout 80 $GQ bench run $W/d31-BF16.gguf --threads 16 --peer --reps 2 --bf16-act > $OUT/run-31b-BF16.txt 2>&1
stamp BF16
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; for f in $OUT/run-*.txt; do echo "== $(basename $f)"; tail -n 3 $f; done; cat $OUT/times.txt; } > $OUT/summary.txt 2>&1
(cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
