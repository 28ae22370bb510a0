#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT.
# Sixth session, main 615e739: issue 12 quantize speed (TQT4_5_M / Q4_K_M / TQT3_375_M of an
# 8-layer E2B-like synthetic at 1 and 16 threads, user and wall seconds, sha256 per thread count),
# TQ GEMV at 1/8/16 threads, then issue 10's GEMV table of all 13 types at 1-16 threads with
# ggml's MUL_MAT (its 8 threads) in the same run.
source scripts/host/setup.sh
T0=$SECONDS
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|Thread|MHz|L3'; } > $OUT/load.txt 2>&1
$W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1 || { cat $OUT/gen.log; exit 1; }
for th in 16 1; do
  for t in TQT4_5_M Q4_K_M TQT3_375_M; do
    /usr/bin/time -f "threads $th $t %U user %e wall %M KB" -a -o $OUT/qtimes.txt \
      timeout 120 $GQ quantize $W/e2b -t $t --threads $th -q -o $W/out-$t-$th.gguf 2>>$OUT/q.log
    case $t in TQ*) sha256sum $W/out-$t-$th.gguf | sed "s|$W/||" >> $OUT/sha.txt;; esac
  done
  echo "quantize threads $th done $((SECONDS-T0)) s" >> $OUT/times.txt
done
rm -rf $W/e2b $W/out-*
timeout 110 $GQ bench kernels --type TQT4_5,TQT3_375,TQT2_5,Q4_K --threads 1,8,16 --reps 5 --no-ggml > $OUT/tq-kernels.txt 2>&1
echo "tq gemv done $((SECONDS-T0)) s" >> $OUT/times.txt
left=$((585-(SECONDS-T0)))
timeout $left $GQ bench kernels --threads 1,2,4,8,16 --reps 3 > $OUT/kernels-all.txt 2>&1
echo "all-type table rc=$? done $((SECONDS-T0)) s" >> $OUT/times.txt
uptime >> $OUT/load.txt
cat $OUT/load.txt $OUT/qtimes.txt; sort $OUT/sha.txt | awk '{print $1}' | uniq -c
grep -h -A6 -E '^(-- [0-9]+ threads|cpu:)' $OUT/tq-kernels.txt | head -40; cat $OUT/times.txt
