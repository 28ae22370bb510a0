#!/bin/bash
# Tenth session: the tiled GEMM for every quantized type (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K
# joined Q4_K, Q6_K, Q8_0) on the 16-core host with AMX. (1) `ktests`: the kernel test binaries
# of this main with the AMX paths required (amx_gemm_* compares the AMX GEMM bit for bit with
# the AVX-512 tile for every type, on the hardware here); (2) MODE=gemm: `gq bench kernels
# --no-gemv --gemm --threads 8` for the ten quantized types against ggml's MUL_MAT
# (test-backend-ops, 4096 x 14336 x 512, 8 threads), and the session's starting main (no ggml)
# for the seven types that were on the row GEMM.
# Carried: .devcarry/m10/gq.xz (this main), .devcarry/tasks10/gq-main.xz (main cee04d7),
# .devcarry/kt/kt.tar.xz, peers (scripts/host/setup.sh).
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
esac
archive
cat $OUT/summary.txt
