#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT.
# Issue 10/11/12 after the s4 merges: GEMM vs ggml (8 thr, twice), E2B Q4_K_M pp/tg vs llama-bench, BF16 pp Intel vs Zen table, TQ bench.
source scripts/host/setup.sh
T0=$SECONDS
uptime > $OUT/load.txt
for i in 1 2; do
  echo "== with ggml, 8 threads, run $i"
  timeout 90 $GQ bench kernels --no-gemv --gemm --threads 8 --type Q4_K,Q6_K,Q8_0,BF16 2>&1 | grep -E "^type|^Q[468]_[K0] +[0-9]|^BF16 +[0-9]|^cpu|^-- GEMM"
done > $OUT/gemm.txt
echo "gemm done $((SECONDS-T0)) s" >> $OUT/times.txt
$W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for t in Q4_K_M BF16; do $GQ quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b
timeout 60 $GQ bench run $W/e2b-Q4_K_M.gguf --threads 16 --peer --reps 3 > $OUT/run-e2b-Q4_K_M.txt 2>&1
for i in 1 2; do for tu in intel zen; do
  echo "round $i tune=$tu $(GQ_TUNE=$tu timeout 40 $GQ bench run $W/e2b-BF16.gguf --threads 16 --tg 0 --reps 3 --bf16-act 2>&1 | grep pp512)"
done; done > $OUT/bf16-tune.txt
timeout 60 env GQ_TUNE=zen $GQ bench run $W/e2b-BF16.gguf --threads 16 --peer --reps 3 --bf16-act > $OUT/run-e2b-BF16-zen.txt 2>&1
rm -f $W/e2b-*.gguf
echo "e2b done $((SECONDS-T0)) s" >> $OUT/times.txt
timeout $((575-(SECONDS-T0))) bash scripts/host_tq_bench.sh > $OUT/tq.txt 2>&1
echo "tq done $((SECONDS-T0)) s" >> $OUT/times.txt
cat $OUT/gemm.txt $OUT/run-e2b-Q4_K_M.txt $OUT/bf16-tune.txt $OUT/run-e2b-BF16-zen.txt; sed -n '/SUMMARY/,$p' $OUT/tq.txt; cat $OUT/times.txt
