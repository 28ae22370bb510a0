#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Ninth session, final main ($GQ = .devcarry/pf9/gq-final.xz) against the session's starting
# main (4f79b76, .devcarry/gq.xz): (1) final main's kernel test binaries (.devcarry/kt/kt.tar.xz)
# with the AMX paths required; (2) issue 12 item 3c: `gq quantize` of the E2B-like 8-layer
# synthetic to Q4_K_M and TQT4_5_M with both binaries, order reversed every other round, 4 rounds
# at 16 threads and 2 at 1 thread, sha256 of the TQT4_5_M files; (3) issue 11's thinnest row on
# final main: the trained fixture's Q4_K_M, `gq bench run --peer` at 16 threads, 2 rounds.
# About 4 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
cp $W/gq $W/gq-start; xz -dc .devcarry/pf9/gq-final.xz > $W/gq-final; chmod +x $W/gq-final; GQ=$W/gq-final
probe > $OUT/probe1.txt 2>&1
ktests
stamp ktests
timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for th in 16 1; do
  R=4; [ $th = 1 ] && R=2
  for r in $(seq $R); do
    if [ $((r % 2)) = 1 ]; then order="start:$W/gq-start final:$GQ"; else order="final:$GQ start:$W/gq-start"; fi
    for pair in $order; do for t in Q4_K_M TQT4_5_M; do qrun ${pair%%:*} ${pair#*:} $th $t $r; done; done
  done
  stamp "quantize $th"
done
sha256sum $W/out-*-TQT4_5_M.gguf | sed "s|$W/||" > $OUT/sha.txt
rm -rf $W/e2b $W/out-*
qratios
timeout 30 $GQ quantize fixtures/trained -o $W/tr-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
for r in 1 2; do timeout 60 $GQ bench run $W/tr-Q4_K_M.gguf --threads 16 --reps 3 --peer > $OUT/run-$r.txt 2>&1; done
stamp "bench run"
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt $OUT/ktests.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"
  cat $OUT/quant.txt $OUT/ratios.txt $OUT/sha.txt; for f in $OUT/run-*.txt; do echo "== $(basename $f)"; grep -A3 '^test' $f; done; cat $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
