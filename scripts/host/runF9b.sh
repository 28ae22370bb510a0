#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Ninth session: did final main change issue 11's thinnest row? runF9 gave the trained fixture's
# Q4_K_M tg128 at 16 threads 1.17x and 1.43x llama.cpp. The session's starting main
# (.devcarry/gq.xz) and final main (.devcarry/pf9/gq-final.xz) alternate on the same file (tg128,
# 16 threads, 4 rounds, order reversed every other round), `--peer` (llama-bench) with the final
# binary in rounds 1 and 3. About 2 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
cp $W/gq $W/gq-start; xz -dc .devcarry/pf9/gq-final.xz > $W/gq-final; chmod +x $W/gq-final
probe > $OUT/probe1.txt 2>&1
timeout 30 $W/gq-final quantize fixtures/trained -o $W/tr.gguf --type Q4_K_M --threads 16 -q > $OUT/gen.log 2>&1
for r in 1 2 3 4; do
  if [ $((r % 2)) = 1 ]; then order="start final"; else order="final start"; fi
  for b in $order; do
    p=; [ $b = final ] && [ $((r % 2)) = 1 ] && p=--peer
    echo "round $r $b: $(timeout 60 $W/gq-$b bench run $W/tr.gguf --pp 0 --tg 128 --threads 16 --reps 3 $p 2>&1 | grep -E '^tg' | tr -s ' ')"
  done
  stamp "round $r"
done > $OUT/tg.txt 2>&1
probe > $OUT/probe2.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; echo "vCPUs below 1.5 vpdpbusd/cycle: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)"; cat $OUT/tg.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
