#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Eighth session, final main against the session's starting main (.devcarry/gq-main.xz, 056bb50):
# (1) issue 12's quantize speed: `gq quantize` of the E2B-like 8-layer synthetic to Q4_K_M and
# TQT4_5_M with both binaries, order reversed every other round, 4 rounds at 16 threads and 2 at
# 1 thread (user/sys/wall per run; ratios within a round); (2) issue 10: the float GEMVs against
# ggml on its L3-resident shape (8 threads), final main default and without software prefetch.
# About 3.5 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
xz -dc .devcarry/gq-main.xz > $W/gq-main; chmod +x $W/gq-main
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
run() { /usr/bin/time -f "round $5 threads $3 $1 $4 %U user %S sys %e wall" -a -o $OUT/quant.txt \
    timeout 60 $2 quantize $W/e2b -t $4 --threads $3 -q -o $W/out-$1-$4.gguf 2>>$OUT/q.log; }
for th in 16 1; do
  R=4; [ $th = 1 ] && R=2
  for r in $(seq $R); do
    if [ $((r % 2)) = 1 ]; then order="start:$W/gq-main final:$GQ"; else order="final:$GQ start:$W/gq-main"; fi
    for pair in $order; do for t in Q4_K_M TQT4_5_M; do run ${pair%%:*} ${pair#*:} $th $t $r; done; done
  done
  stamp "quantize $th"
done
sha256sum $W/out-*-TQT4_5_M.gguf | sed "s|$W/||" > $OUT/sha.txt
rm -rf $W/e2b $W/out-*
for v in default zen; do
  e=; [ $v = zen ] && e=GQ_KERNELS_TUNE=zen
  env $e timeout 60 $GQ bench kernels --type F32,F16,BF16 --threads 8 --reps 3 > $OUT/kf-$v.txt 2>&1
  stamp "floats $v"
done
uptime >> $OUT/load.txt
{ cat $OUT/load.txt $OUT/quant.txt $OUT/sha.txt $OUT/times.txt; for f in $OUT/kf-*.txt; do echo "== $(basename $f)"; grep -A4 "GEMV vs ggml" $f; done; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
