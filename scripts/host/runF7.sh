#!/bin/bash
# Host bench (see scripts/host/setup.sh; also carries .devcarry/probe.xz, the compiled
# scripts/host/vnni_probe.c); writes small text files to $OUT, one archive at the end.
# Seventh session, final main (guided GEMM split, vectorised soft-capping, the TQ changes):
# how many vCPUs run the vpdpbusd probe at reduced speed (before and after), issue 10's GEMM
# n = 512 against ggml (twice), issue 11's speed table (gq bench run --peer at 16 threads: the
# trained fixture, E2B-like 8 layers Q4_K_M / Q8_0 / BF16 --bf16-act, 31B-like 2 layers
# Q4_K_M), issue 12's `gq ppl` TQT4_5_M vs Q4_K_M (alternated, 2 and 16 threads) and quantize
# time of both on the E2B-like model. Every step is time-limited; about 9 minutes in all.
source scripts/host/setup.sh
T0=$SECONDS
left() { echo $((530 - (SECONDS - T0))); }
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
P=$W/probe; [ -x $P ] || { xz -dc .devcarry/probe.xz > $P; chmod +x $P; }
probe() { for i in $(seq 0 15); do timeout 10 $P 30000000 $i > $W/o$i & done; wait
  for i in $(seq 0 15); do echo "cpu $i: $(cat $W/o$i)"; done; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
probe > $OUT/probe1.txt 2>&1
for i in 1 2; do
  echo "== GEMM run $i"
  timeout 100 $GQ bench kernels --no-gemv --gemm --threads 8,16 --type Q4_K,Q6_K,Q8_0,BF16 2>&1 | sed -n '/^-- GEMM/,$p'
done > $OUT/gemm.txt
stamp gemm
for t in Q4_K_M Q8_0 BF16 TQT4_5_M; do $GQ quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M Q8_0 BF16; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  timeout 40 $GQ bench run $W/tr-$t.gguf --threads 16 --peer --reps 5 $extra > $OUT/run-trained-$t.txt 2>&1
done
stamp trained
# main's kernel test binaries (cargo test -p gq-kernels --release --no-run, stripped, in
# .devcarry/kt/kt.tar.xz) with the AMX paths required.
K=$W/kt; mkdir -p $K; tar -C $K -xJf .devcarry/kt/kt.tar.xz
for t in gq_kernels amx pool_stress quant_simd_equality simd_vs_scalar tq_simd_vs_scalar; do
  echo "$t: $(cd kernels && GQ_REQUIRE_ISAS=avx2,avx512,amx timeout 100 $K/$t 2>&1 | grep -E '^test result|FAILED|panicked' | tr '\n' ' ')"
done > $OUT/ktests.txt 2>&1
stamp ktests
for r in 1 2 3; do for th in 2 16; do for t in Q4_K_M TQT4_5_M; do
  cpus=""; [ $th = 2 ] && cpus="taskset -c 0,1"
  /usr/bin/time -f "threads $th round $r $t %e s wall %U s user" -a -o $OUT/ppl.txt \
    timeout 30 $cpus $GQ ppl $W/tr-$t.gguf --text fixtures/trained/eval.txt --chunks 64 --threads $th > /dev/null 2>&1
done; done; done
stamp ppl
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for t in Q4_K_M TQT4_5_M Q4_K_M TQT4_5_M; do
  /usr/bin/time -f "quantize e2b $t %e s wall %U s user" -a -o $OUT/quant.txt \
    timeout 60 $GQ quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1
done
for t in BF16 Q8_0; do timeout 60 $GQ quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b $W/e2b-TQT4_5_M.gguf
stamp gen-e2b
for t in Q4_K_M BF16 Q8_0; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  l=$(left); [ $l -gt 100 ] && l=100
  [ $l -gt 20 ] && timeout $l $GQ bench run $W/e2b-$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/run-e2b-$t.txt 2>&1
  stamp "e2b $t"
done
rm -f $W/e2b-*.gguf
if [ $(left) -gt 90 ]; then
  timeout 60 $W/synth --shape 31b --layers 2 --out $W/d31 >> $OUT/gen.log 2>&1 && timeout 60 $GQ quantize $W/d31 -o $W/d31-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/d31
  l=$(left); [ $l -gt 20 ] && timeout $l $GQ bench run $W/d31-q4km.gguf --threads 16 --peer --reps 2 > $OUT/run-31b-Q4_K_M.txt 2>&1
  stamp 31b
fi
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
slow() { awk '{ if ($(NF-2) + 0 < 1.5) n++ } END { print n + 0 }' $1; }
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  cat $OUT/ktests.txt $OUT/gemm.txt; for f in $OUT/run-*.txt; do echo "== $(basename $f)"; tail -n 3 $f; done
  cat $OUT/ppl.txt $OUT/quant.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
# The device returns a few files only: everything in one archive, plus the summary.
(cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
