#!/bin/bash
# Tenth session: the tiled GEMM for every quantized type (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K
# joined Q4_K, Q6_K, Q8_0) on the 16-core host with AMX. (1) `ktests`: the kernel test binaries
# of this main with the AMX paths required (amx_gemm_* compares the AMX GEMM bit for bit with
# the AVX-512 tile for every type, on the hardware here); (2) MODE=gemm: `gq bench kernels
# --no-gemv --gemm --threads 8` for the ten quantized types against ggml's MUL_MAT
# (test-backend-ops, 4096 x 14336 x 512, 8 threads), and the session's starting main (no ggml)
# for the seven types that were on the row GEMM.
# (3) MODE=final: `ktests` of the session's final main, then issue 12 item c on it: per block
# `tq_quant_bench TQT4_5,Q4_K` (final and the starting main's, alternated, 3 rounds) and
# `gq quantize` of the E2B-like 8-layer synthetic to TQT4_5_M and Q4_K_M (`qrun`; final and
# starting main alternated, order reversed every other round; 4 rounds at 16 threads, 2 at 1).
# Carried: .devcarry/m10/gq.xz and tqb.xz (this main), .devcarry/tasks10/gq-main.xz and
# .devcarry/tqenc10/tqb-base.xz (main cee04d7), .devcarry/kt/kt.tar.xz, peers (setup.sh).
source scripts/host/setup.sh
source scripts/host/common.sh
xz -dc .devcarry/m10/gq.xz > $W/gq-m10; chmod +x $W/gq-m10
case ${MODE:-kt} in
kt)
  ktests; stamp ktests
  { cat $OUT/load.txt; cat $OUT/ktests.txt $OUT/times.txt; } > $OUT/summary.txt ;;
gemm)
  xz -dc .devcarry/tasks10/gq-main.xz > $W/gq-old; chmod +x $W/gq-old
  timeout 240 $W/gq-m10 bench kernels --no-gemv --gemm --threads 8 \
    --type Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K > $OUT/gemm-new.txt 2>&1
  stamp "gemm new"
  timeout 120 $W/gq-old bench kernels --no-gemv --gemm --no-ggml --threads 8 \
    --type Q4_0,Q4_1,Q5_0,Q5_1,Q2_K,Q3_K,Q5_K > $OUT/gemm-old.txt 2>&1
  stamp "gemm old"
  { cat $OUT/load.txt; grep -E "^(type|Q[0-9]_[0-9K]+ |  Q4_K peak|cpu)" $OUT/gemm-new.txt;
    echo "-- session start main (no ggml):"; grep -E "^(type|Q[0-9]_[0-9K]+ )" $OUT/gemm-old.txt;
    cat $OUT/times.txt; } > $OUT/summary.txt ;;
final)
  ktests; stamp ktests
  xz -dc .devcarry/tasks10/gq-main.xz > $W/gq-old; chmod +x $W/gq-old
  xz -dc .devcarry/m10/tqb.xz > $W/tqb-m10; xz -dc .devcarry/tqenc10/tqb-base.xz > $W/tqb-old
  chmod +x $W/tqb-m10 $W/tqb-old
  for r in 1 2 3; do for b in old m10; do
    echo "round $r $b: $(TQB_REPS=60 timeout 30 $W/tqb-$b TQT4_5,Q4_K 2>&1 | tr '\n' ' ')"
  done; done > $OUT/block.txt
  stamp "per block"
  timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
  stamp gen
  for th in 16 1; do
    n=4; [ $th = 1 ] && n=2
    for r in $(seq 1 $n); do
      if [ $((r % 2)) = 1 ]; then order="old m10"; else order="m10 old"; fi
      for b in $order; do for t in Q4_K_M TQT4_5_M; do qrun $b $W/gq-$b $th $t $r; done; done
    done
    stamp "quantize $th"
  done
  qratios
  sha256sum $W/out-*.gguf | cut -c1-16,65- > $OUT/sha.txt
  { cat $OUT/load.txt; cat $OUT/ktests.txt; cat $OUT/block.txt; cat $OUT/quant.txt;
    cat $OUT/ratios.txt $OUT/sha.txt $OUT/times.txt; } > $OUT/summary.txt ;;
q1)
  # More one-thread rounds of (3)'s quantize comparison (a slow vCPU took one of its two).
  xz -dc .devcarry/tasks10/gq-main.xz > $W/gq-old; chmod +x $W/gq-old
  timeout 60 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
  probe > $OUT/probe1.txt 2>&1
  for r in 1 2 3 4; do
    if [ $((r % 2)) = 1 ]; then order="old m10"; else order="m10 old"; fi
    for b in $order; do for t in Q4_K_M TQT4_5_M; do qrun $b $W/gq-$b 1 $t $r; done; done
    stamp "round $r"
  done
  probe > $OUT/probe2.txt 2>&1
  qratios
  { cat $OUT/load.txt; echo "slow vCPUs: start $(slow $OUT/probe1.txt), end $(slow $OUT/probe2.txt)";
    cat $OUT/quant.txt $OUT/ratios.txt $OUT/times.txt; } > $OUT/summary.txt ;;
goal)
  # Issue 10's GEMM goal types, three rounds (the gemm mode had one).
  for r in 1 2 3; do
    echo "== round $r"
    timeout 100 $W/gq-m10 bench kernels --no-gemv --gemm --threads 8 --type Q4_K,Q6_K,Q8_0 2>&1 \
      | grep -E "^(type|Q4_K |Q6_K |Q8_0 )"
    stamp "round $r"
  done > $OUT/goal.txt
  { cat $OUT/load.txt $OUT/goal.txt $OUT/times.txt; } > $OUT/summary.txt ;;
big)
  # The GEMV task count by size on a 31B-like model (2 layers), whose FFN matrices now get up
  # to 8 ranges per thread at 16 threads: tg128 of its Q4_K_M and BF16 files, final main against
  # the session's starting main, alternated, 3 rounds at 16 and 8 threads.
  xz -dc .devcarry/tasks10/gq-main.xz > $W/gq-old; chmod +x $W/gq-old
  timeout 90 $W/synth --shape 31b --layers 2 --out $W/d31 > $OUT/gen.log 2>&1
  timeout 120 $W/gq-m10 quantize $W/d31 -o $W/d31-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  stamp gen
  for r in 1 2 3; do
    if [ $((r % 2)) = 1 ]; then order="old m10"; else order="m10 old"; fi
    for t in 16 8; do for b in $order; do
      echo "round $r threads $t $b $(timeout 60 $W/gq-$b bench run $W/d31-q4km.gguf --pp 0 --tg 64 --reps 2 --threads $t 2>&1 | grep -E '^tg' | tr -s ' ')"
    done; done
    stamp "round $r"
  done > $OUT/big.txt
  { cat $OUT/load.txt $OUT/big.txt $OUT/times.txt; tail -3 $OUT/gen.log; } > $OUT/summary.txt ;;
esac
archive
cat $OUT/summary.txt
