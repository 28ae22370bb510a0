#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT.
# Candidate defaults for the parallel-task knobs: trained fixture and E2B-like 8 layers, gq alone (alternating), then with llama-bench.
source scripts/host/setup.sh
T0=$SECONDS
uptime > $OUT/load.txt
for t in Q4_K_M Q8_0 BF16; do $W/gq quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
$W/synth --shape e2b --layers 8 --out $W/e2b >> $OUT/gen.log 2>&1
for t in Q4_K_M Q8_0; do $W/gq quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b
b() { local label=$1 f=$2; shift 2; echo "$label $(env "$@" timeout 30 $W/gq bench run $f --threads 16 --reps 3 2>&1 | grep -E '^(pp|tg)' | awk '{print $1, $2, $3, $4}' | tr '\n' ' ')"; }
{
for r in 1 2; do
  for f in tr-Q4_K_M tr-Q8_0 e2b-Q4_K_M; do
    b "r$r $f default" $W/$f.gguf
    b "r$r $f B256K" $W/$f.gguf GQ_MIN_TASK_BYTES=262144
    b "r$r $f B256K+E64K" $W/$f.gguf GQ_MIN_TASK_BYTES=262144 GQ_MIN_TASK_ELEMS=65536
  done
done
} > $OUT/cand.txt 2>&1
echo "cand done $((SECONDS-T0)) s" >> $OUT/times.txt
for t in tr-Q4_K_M tr-Q8_0 tr-BF16 e2b-Q4_K_M e2b-Q8_0; do
  extra=""; [ $t = tr-BF16 ] && extra="--bf16-act"
  GQ_MIN_TASK_BYTES=262144 GQ_MIN_TASK_ELEMS=65536 timeout 60 $W/gq bench run $W/$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/peer-$t.txt 2>&1
  echo "peer $t done $((SECONDS-T0)) s" >> $OUT/times.txt
done
cat $OUT/cand.txt; tail -n 3 $OUT/peer-*.txt; cat $OUT/times.txt
