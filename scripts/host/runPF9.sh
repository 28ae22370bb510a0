#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Ninth session, issue 10 (one thread's quantized GEMV below 85 % of the read bandwidth on
# Intel): the quantized Intel kernels now prefetch the weight stream at two distances (T2 at
# 8 KiB, T0 at 2 KiB; main: one T0 at 4 KiB). Main's gq and the new one (.devcarry/pf9/gq-pf.xz)
# alternate, order reversed every other round, 3 rounds of `gq bench kernels` (Q4_K, Q6_K,
# Q8_0, Q5_K at 1/2/4/8/16 threads); tg of the E2B-like 8-layer Q4_K_M at 16 and 1 threads
# (2 rounds); then the new binary's 13-type table with ggml. About 5 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
xz -dc .devcarry/pf9/gq-pf.xz > $W/gq-pf; chmod +x $W/gq-pf
probe > $OUT/probe1.txt 2>&1
for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then order="main pf"; else order="pf main"; fi
  for b in $order; do
    bin=$GQ; [ $b = pf ] && bin=$W/gq-pf
    echo "== round $r $b"
    timeout 70 $bin bench kernels --type Q4_K,Q6_K,Q8_0,Q5_K --threads 1,2,4,8,16 --reps 3 --no-ggml 2>&1 | grep -E '^(-- [0-9]+ thread|Q4_K |Q6_K |Q8_0 |Q5_K )'
  done
  stamp "gemv round $r"
done > $OUT/gemv.txt 2>&1
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
timeout 60 $GQ quantize $W/e2b -o $W/e2b-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/e2b
stamp gen
for r in 1 2; do
  if [ $((r % 2)) = 1 ]; then order="main pf"; else order="pf main"; fi
  for th in 16 1; do tg=128; [ $th = 1 ] && tg=16
    for b in $order; do bin=$GQ; [ $b = pf ] && bin=$W/gq-pf
      echo "round $r threads $th $b $(timeout 40 $bin bench run $W/e2b-Q4_K_M.gguf --pp 0 --tg $tg --reps 2 --threads $th 2>&1 | grep -E '^tg' | tr -s ' ')"
    done
  done
  stamp "tg round $r"
done > $OUT/tg.txt 2>&1
timeout 170 $W/gq-pf bench kernels --threads 1,2,4,8,16 --reps 3 > $OUT/table13.txt 2>&1
stamp table13
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  cat $OUT/gemv.txt $OUT/tg.txt $OUT/times.txt; grep -E '^(--|[A-Z0-9_]+ +[0-9])' $OUT/table13.txt | head -120; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
