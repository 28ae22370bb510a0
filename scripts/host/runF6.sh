#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT.
# Sixth session, final main (AMX tiles + the runner's worker pool): issue 11's speed table
# (gq bench run --peer at 16 threads: E2B-like 8 layers Q4_K_M / Q8_0 / BF16 --bf16-act, the
# trained fixture, the 31B-like 2 layers Q4_K_M), issue 10's GEMM n = 512 against ggml (twice),
# issue 12's `gq ppl` wall time TQT4_5_M vs Q4_K_M on the trained fixture (alternated, 3 rounds).
# Every step is time-limited; the whole script stays under ~9.5 minutes.
source scripts/host/setup.sh
T0=$SECONDS
left() { echo $((570 - (SECONDS - T0))); }
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
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
for th in 2 16; do for r in 1 2 3; do for t in Q4_K_M TQT4_5_M; do
  /usr/bin/time -f "threads $th round $r $t %e s wall %U s user" -a -o $OUT/ppl.txt \
    timeout 30 $GQ ppl $W/tr-$t.gguf --text fixtures/trained/eval.txt --chunks 16 --threads $th > /dev/null 2>&1
done; done; done
stamp ppl
$W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
for t in Q4_K_M BF16 Q8_0; do $GQ quantize $W/e2b -o $W/e2b-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
rm -rf $W/e2b
stamp gen-e2b
for t in Q4_K_M BF16 Q8_0; do
  extra=""; [ $t = BF16 ] && extra="--bf16-act"
  l=$(left); [ $l -gt 100 ] && l=100
  [ $l -gt 20 ] && timeout $l $GQ bench run $W/e2b-$t.gguf --threads 16 --peer --reps 3 $extra > $OUT/run-e2b-$t.txt 2>&1
  stamp "e2b $t"
done
rm -f $W/e2b-*.gguf
if [ $(left) -gt 90 ]; then
  $W/synth --shape 31b --layers 2 --out $W/d31 >> $OUT/gen.log 2>&1 && $GQ quantize $W/d31 -o $W/d31-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/d31
  l=$(left); [ $l -gt 20 ] && timeout $l $GQ bench run $W/d31-q4km.gguf --threads 16 --peer --reps 2 > $OUT/run-31b-Q4_K_M.txt 2>&1
  stamp 31b
fi
uptime >> $OUT/load.txt
{ cat $OUT/load.txt $OUT/gemm.txt; tail -n 4 $OUT/run-*.txt; cat $OUT/ppl.txt $OUT/times.txt; } > $OUT/summary.txt
# The device returns a few files only: everything in one archive, plus the summary.
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
