#!/bin/bash
# Issue 10/11, seventh session: should every GEMV type take 4 row tasks per thread (claimed as
# threads come free, as the TQ types do since this session) instead of one range per thread?
# On this host some vCPUs run vector code at half speed at any time (scripts/host/vnni_probe.c).
# Main's gq, GQ_GEMV_TASKS_PER_THREAD=1 (the default for the k-quants and floats) against =4,
# alternated: the GEMV bench (Q4_K, Q6_K, Q8_0, BF16 at 1/4/8/16 threads, two rounds) and tg128
# of the E2B-like 8-layer Q4_K_M and Q8_0 at 16 and 8 threads (three rounds). ~2.5 minutes.
source scripts/host/setup.sh
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
P=$W/probe; [ -x $P ] || { xz -dc .devcarry/probe.xz > $P; chmod +x $P; }
probe() { for i in $(seq 0 15); do timeout 10 $P 30000000 $i > $W/o$i & done; wait
  for i in $(seq 0 15); do echo "cpu $i: $(cat $W/o$i)"; done; }
slow() { awk '{ if ($(NF-2) + 0 < 1.5) n++ } END { print n + 0 }' $1; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
probe > $OUT/probe1.txt 2>&1
for r in 1 2; do for k in 1 4; do
  echo "== round $r tasks per thread $k"
  GQ_GEMV_TASKS_PER_THREAD=$k timeout 40 $GQ bench kernels --type Q4_K,Q6_K,Q8_0,BF16 --threads 1,4,8,16 --reps 5 --no-ggml 2>&1 | grep -E '^(-- [0-9]+ thread|Q4_K |Q6_K |Q8_0 |BF16 )'
done; done > $OUT/gemv.txt 2>&1
stamp gemv
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for t in Q4_K_M Q8_0; do timeout 60 $GQ quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b
stamp gen
for r in 1 2 3; do for th in 16 8; do for t in Q4_K_M Q8_0; do for k in 1 4; do
  echo "round $r threads $th $t k=$k $(GQ_GEMV_TASKS_PER_THREAD=$k timeout 30 $GQ bench run $W/e2b-$t.gguf --pp 0 --tg 128 --reps 3 --threads $th 2>&1 | grep -E '^tg' | tr -s ' ' | cut -d' ' -f2)"
done; done; done; done > $OUT/tg.txt 2>&1
stamp tg
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  cat $OUT/gemv.txt $OUT/tg.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
(cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
