#!/bin/bash
# Host bench (see scripts/host/setup.sh; also carries .devcarry/probe.xz, the compiled
# scripts/host/vnni_probe.c); writes small text files to $OUT, one archive at the end.
# Eighth session, final main: issue 11's whole speed table in one visit (gq bench run --peer at
# 16 threads, gq and llama-bench in the same invocation): the trained fixture, E2B-like 8 layers
# and 31B-like 2 layers, each at Q4_K_M, Q8_0 and BF16 (--bf16-act), with the vpdpbusd probe
# before and after, and main's kernel test binaries with AMX required. About 6 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
probe > $OUT/probe1.txt 2>&1
# main's kernel test binaries (cargo test -p gq-kernels --release --no-run, stripped, in
# .devcarry/kt/kt.tar.xz) with the AMX paths required.
K=$W/kt; mkdir -p $K; tar -C $K -xJf .devcarry/kt/kt.tar.xz
for t in gq_kernels amx pool_stress quant_simd_equality simd_vs_scalar tq_simd_vs_scalar; do
  echo "$t: $(cd kernels && GQ_REQUIRE_ISAS=avx2,avx512,amx timeout 100 $K/$t 2>&1 | grep -E '^test result|FAILED|panicked' | tr '\n' ' ')"
done > $OUT/ktests.txt 2>&1
stamp ktests
ex() { [ $1 = BF16 ] && echo --bf16-act; }
for t in Q4_K_M Q8_0 BF16; do $GQ quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M Q8_0 BF16; do
  timeout 50 $GQ bench run $W/tr-$t.gguf --threads 16 --peer --reps 5 --rounds 2 $(ex $t) > $OUT/run-1trained-$t.txt 2>&1
done
stamp trained
# rows NAME SHAPE LAYERS REPS TIMEOUT: make the synthetic checkpoint, quantize it to the three
# types, bench each.
rows() {
  timeout 60 $W/synth --shape $2 --layers $3 --out $W/$1 >> $OUT/gen.log 2>&1
  for t in Q4_K_M Q8_0 BF16; do timeout 60 $GQ quantize $W/$1 -o $W/$1-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
  rm -rf $W/$1
  for t in Q4_K_M Q8_0 BF16; do
    timeout $5 $GQ bench run $W/$1-$t.gguf --threads 16 --peer --reps $4 $(ex $t) > $OUT/run-$1-$t.txt 2>&1
    stamp "$1 $t"
  done
  rm -f $W/$1-*.gguf
}
rows 2e2b e2b 8 3 70
rows 3d31 31b 2 2 80
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; cat $OUT/ktests.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  for f in $OUT/run-*.txt; do echo "== $(basename $f)"; tail -n 3 $f; done
  cat $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
