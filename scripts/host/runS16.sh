#!/bin/bash
# Sixteenth session, one visit to the 16-core Intel host (no Rust there). Carried (made on the
# build machine, git-ignored) in .devcarry/s16: kt16.tar.xz (stripped kernel test binaries of
# final main, /work/notes/devtar16.sh), gq-new.xz / gq-base.xz (stripped + xz release binaries:
# final main and the session's starting main), tr-TQT4_5_M.gguf, tr-Q4_K_M.gguf (`gq quantize
# fixtures/trained --type …`). (1) the kernel tests with AVX2, AVX-512 and AMX required; (2)
# `gq ppl --json` of both binaries identical (bar seconds and RSS) at 16 and 2 threads, with the
# default K chunk and GQ_TILE_KC=32 (several chunks: the AMX accumulators carried between
# chunks); (3) `gq ppl` wall time, the binaries alternated; (4) the n = 512 GEMM, both binaries.
# Writes $OUT/summary.txt.
set -u
D=.devcarry/s16; W=/tmp/w16; mkdir -p $W
for b in new base; do xz -dc $D/gq-$b.xz > $W/gq-$b; chmod +x $W/gq-$b; done
tar -C $W -xJf $D/kt16.tar.xz
T=fixtures/trained/eval.txt
S=$OUT/summary.txt
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-400; } > $S
echo "== kernel tests" >> $S
for t in $W/kt/*; do
  GQ_REQUIRE_ISAS=avx2,avx512,amx timeout 200 $t -q > $OUT/kt-$(basename $t).txt 2>&1
  echo "$(basename $t) rc=$? $(grep -E '^test result' $OUT/kt-$(basename $t).txt | tr '\n' ' ')" >> $S
done
echo "== ppl --json identity (seconds, peak_rss_bytes removed)" >> $S
for f in Q4_K_M TQT4_5_M; do for th in 16 2; do for kc in "" 32; do
  for b in base new; do
    env ${kc:+GQ_TILE_KC=$kc} timeout 60 $W/gq-$b ppl $D/tr-$f.gguf --text $T --chunks 8 --threads $th --json 2>/dev/null \
      | sed -E 's/"(seconds|peak_rss_bytes)": *[0-9.eE+-]+,?//g' > $W/id-$b.json
  done
  if [ -s $W/id-new.json ] && cmp -s $W/id-base.json $W/id-new.json; then r=same; else r=DIFFERENT; fi
  echo "$f threads $th kc '${kc}': $r ($(wc -c < $W/id-new.json) bytes)" >> $S
done; done; done
echo "== ppl wall time" >> $S
for th in 16 2; do for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then order="base new"; else order="new base"; fi
  for b in $order; do for f in TQT4_5_M Q4_K_M; do
    /usr/bin/time -f "ppl threads $th round $r $b $f %e wall %U user" -a -o $OUT/ppl.txt \
      timeout 60 $W/gq-$b ppl $D/tr-$f.gguf --text $T --chunks 32 --threads $th > /dev/null 2>&1
  done; done
done; done
cat $OUT/ppl.txt >> $S
echo "== GEMM n = 512, 8 threads" >> $S
for r in 1 2; do for b in base new; do
  timeout 100 $W/gq-$b bench kernels --gemm --no-gemv --no-ggml --threads 8 --type Q4_K,Q6_K,Q8_0 > $OUT/gemm-$r-$b.txt 2>&1
  echo "-- round $r $b rc=$?" >> $S; grep -iE 'gflop|Q4_K|Q6_K|Q8_0' $OUT/gemm-$r-$b.txt | tail -6 >> $S
done; done
date -u '+%T UTC done' >> $S
