#!/bin/bash
# Tenth session, issue 12 item c (helper tqenc10, branch s10-tqenc): is quantizing to TQT4_5_M
# now at least as fast as to Q4_K_M? The branch's TQ encoder (same bytes; vector far-point
# search, no mask moves in the nearest-point search, min-based add-compare-select, gathered
# traceback words, shrx state walks, 256-blocks rotated in registers) against main cee04d7
# (both built by the helper). (1) per block: `tq_quant_bench TQT4_5,Q4_K` (one thread, the two
# types alternating inside each of 60 reps; median per-rep ratio), both binaries alternated,
# 3 rounds; (2) `gq quantize` of the E2B-like 8-layer synthetic (1.33 B parameters) to Q4_K_M
# and TQT4_5_M with both binaries, order reversed every other round, 4 rounds at 16 threads and
# up to 2 at 1 thread (user/sys/wall per run; TQT4_5_M / Q4_K_M within a round), sha256 of
# every output (both binaries must write the same bytes). About 3.5 minutes.
set -u
C=.devcarry/tqenc10
OUT=${OUT:-/tmp/tqenc10-out}; mkdir -p $OUT
W=$(mktemp -d /tmp/tqenc10.XXXX)
source scripts/host/common.sh
for f in gq-base gq-tqenc10 tqb-base tqb-tqenc10; do xz -dc $C/$f.xz > $W/$f; chmod +x $W/$f; done
xz -dc .devcarry/synth.xz > $W/synth; chmod +x $W/synth
L=8; [ -n "${LOCALTEST:-}" ] && L=1   # LOCALTEST=1: a one-layer dry run
timeout 60 $W/synth --shape e2b --layers $L --out $W/e2b > $OUT/gen.log 2>&1
stamp "generated"
for r in 1 2 3; do
  for b in base tqenc10; do
    echo "round $r $b: $(TQB_REPS=60 timeout 30 $W/tqb-$b TQT4_5,Q4_K 2>&1 | awk '{printf "%s %s ", $2, $3} END{print "median Q4_K/TQT4_5 " $NF}')" >> $OUT/block.txt
  done
done
stamp "per-block bench"
run() { /usr/bin/time -f "round $5 threads $3 $1 $4 %U user %S sys %e wall" -a -o $OUT/quant.txt \
    timeout 60 $2 quantize $W/e2b -t $4 --threads $3 -q -o $W/out-$1-$4-$3.gguf 2>>$OUT/q.log; }
for th in 16 1; do
  R=4; [ $th = 1 ] && R=2; [ -n "${LOCALTEST:-}" ] && R=1
  for r in $(seq $R); do
    if [ $th = 1 ] && [ $((SECONDS - T0)) -gt 170 ]; then stamp "skipped 1-thread round $r"; break; fi
    if [ $((r % 2)) = 1 ]; then order="main:$W/gq-base branch:$W/gq-tqenc10"; else order="branch:$W/gq-tqenc10 main:$W/gq-base"; fi
    for pair in $order; do for t in Q4_K_M TQT4_5_M; do run ${pair%%:*} ${pair#*:} $th $t $r; done; done
  done
  stamp "quantize $th"
done
(cd $W && sha256sum out-*.gguf | cut -c1-16,65-) > $OUT/sha.txt
rm -rf $W/e2b $W/out-*
uptime >> $OUT/load.txt
awk '{ k=$2" "$4" "$5; u[k" "$6]=$7; w[k" "$6]=$11 }
     END { for (k in u) if (k ~ / Q4_K_M$/) { b=substr(k,1,length(k)-7);
       printf "round %s: TQ/Q4K user %.3f wall %.3f\n", b, u[b" TQT4_5_M"]/u[k], w[b" TQT4_5_M"]/w[k] } }' \
    $OUT/quant.txt | sort -k4,4n -k2,2n > $OUT/ratios.txt
{ cat $OUT/load.txt $OUT/block.txt $OUT/quant.txt $OUT/ratios.txt $OUT/sha.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
rm -rf $W
