#!/bin/bash
# Fourteenth session, one visit to the 16-core Intel host (no Rust there): (1) issue 12 item 3,
# `gq ppl` of the trained fixture's TQT4_5_M and Q4_K_M at 16 and 2 threads, the session's
# starting binary and its final main alternated (order reversed every other round; final main
# prepares one activation for Q/K/V and one for gate/up); (2) issue 10, `gq bench kernels
# --threads 1,2,4,8,16 --no-ggml` for Q4_K, Q6_K, Q8_0, BF16, TQT4_5 on final main.
# Carried (made on the build machine, git-ignored): .devcarry/s14/gq-new.xz, gq-base.xz (strip +
# xz of the two release binaries), tr-TQT4_5_M.gguf, tr-Q4_K_M.gguf (`gq quantize
# fixtures/trained --type …`). Writes $OUT/summary.txt. ROUNDS (3), CHUNKS (32) and KERN=0 (no
# kernel bench) adjust a visit.
set -u
D=.devcarry/s14; W=/tmp/w14; mkdir -p $W
for b in new base; do xz -dc $D/gq-$b.xz > $W/gq-$b; chmod +x $W/gq-$b; done
T=fixtures/trained/eval.txt
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)'; } > $OUT/summary.txt
for th in 16 2; do for r in $(seq 1 ${ROUNDS:-3}); do
  if [ $((r % 2)) = 1 ]; then order="base new"; else order="new base"; fi
  for b in $order; do for f in TQT4_5_M Q4_K_M; do
    /usr/bin/time -f "ppl threads $th round $r $b $f %e wall %U user" -a -o $OUT/ppl.txt \
      timeout 120 $W/gq-$b ppl $D/tr-$f.gguf --text $T --chunks ${CHUNKS:-32} --threads $th > /dev/null 2>&1
  done; done
done; done
cat $OUT/ppl.txt >> $OUT/summary.txt
[ ${KERN:-1} = 1 ] && timeout 420 $W/gq-new bench kernels --threads 1,2,4,8,16 --reps 3 --size-mib 256 --no-ggml \
  --type Q4_K,Q6_K,Q8_0,BF16,TQT4_5 > $OUT/kern.txt 2>&1
[ ${KERN:-1} = 1 ] && grep -vE 'alternating|^ *$' $OUT/kern.txt | tail -45 >> $OUT/summary.txt
