#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Eighth session, issue 11's 31B-like BF16 tg row (bandwidth-bound, 1.19x in runB8): the two-row
# float/BF16 dots' prefetch now skips the partner row past the end of its own row
# (x86::prefetch_pair), so both rows of the next pair start warm. Main's binary (gq-main) and the
# new one (gq-pair) alternate in 3 rounds on the 2-layer 31B-like BF16 file (--bf16-act, tg128,
# 16 threads), llama-bench once per round (--peer on the new binary), and the new binary with
# GQ_KERNELS_TUNE=zen (no software prefetch) for reference. About 4 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
for b in main pair; do xz -dc .devcarry/gq-$b.xz > $W/gq-$b; chmod +x $W/gq-$b; done
timeout 60 $W/synth --shape 31b --layers 2 --out $W/d31 > $OUT/gen.log 2>&1
timeout 60 $GQ quantize $W/d31 -o $W/d31-BF16.gguf --type BF16 --threads 16 -q >> $OUT/gen.log 2>&1
rm -rf $W/d31
stamp gen
F=$W/d31-BF16.gguf
for r in 1 2 3; do
  timeout 70 $W/gq-pair bench run $F --pp 0 --threads 16 --reps 2 --bf16-act --peer > $OUT/r$r-pair-peer.txt 2>&1
  timeout 40 $W/gq-main bench run $F --pp 0 --threads 16 --reps 2 --bf16-act > $OUT/r$r-main.txt 2>&1
  GQ_KERNELS_TUNE=zen timeout 40 $W/gq-pair bench run $F --pp 0 --threads 16 --reps 2 --bf16-act > $OUT/r$r-pair-zen.txt 2>&1
  timeout 40 $W/gq-pair bench run $F --pp 0 --threads 16 --reps 2 --bf16-act > $OUT/r$r-pair.txt 2>&1
  stamp "round $r"
done
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; cat $OUT/times.txt; for f in $OUT/r*.txt; do echo "$(basename $f): $(grep -E '^tg' $f)"; done; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
