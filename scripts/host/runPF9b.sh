#!/bin/bash
# Host bench (see scripts/host/setup.sh); writes small text files to $OUT, one archive at the end.
# Ninth session, issue 10. (1) One and two threads' quantized GEMV with the two-level prefetch
# (.devcarry/pf9/gq-new.xz, main at 63753a5) against the eighth session's main ($GQ), each round pinned with
# taskset to the four vCPUs the `vpdpbusd` probe finds fastest just before (a thread on a
# half-speed vCPU decodes Q4_K below the one-thread bandwidth), and unpinned for contrast;
# 3 rounds, order reversed every other round. (2) F32/F16/BF16 against ggml on its L3-resident
# shape at 8 threads: default, no software prefetch (GQ_KERNELS_TUNE=zen), 8 tasks per thread;
# 2 rounds. (3) The TQ GEMVs (the new TQJ 256-block path) at 1/8/16 threads, both binaries, 2
# rounds. About 4 minutes.
source scripts/host/setup.sh
source scripts/host/common.sh
xz -dc .devcarry/pf9/gq-new.xz > $W/gq-pf; chmod +x $W/gq-pf
fast() { probe > $W/pr.txt 2>&1; sed 's/://' $W/pr.txt | sort -k3 -g -r | head -4 | awk '{print $2}' | paste -sd,; }
for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then order="main pf"; else order="pf main"; fi
  C=$(fast); echo "== round $r fastest vCPUs $C"
  for b in $order; do bin=$GQ; [ $b = pf ] && bin=$W/gq-pf
    for pin in pinned free; do
      pre=; [ $pin = pinned ] && pre="taskset -c $C"
      echo "-- $b $pin"
      timeout 60 $pre $bin bench kernels --type Q4_K,Q6_K,Q8_0,BF16 --threads 1,2 --reps 3 --no-ggml 2>&1 | grep -E '^(-- [0-9]+ thread|Q4_K |Q6_K |Q8_0 |BF16 )'
    done
  done
  stamp "pinned round $r"
done > $OUT/pin.txt 2>&1
for r in 1 2; do for v in default zen tasks8; do
  e=; [ $v = zen ] && e=GQ_KERNELS_TUNE=zen; [ $v = tasks8 ] && e=GQ_GEMV_TASKS_PER_THREAD=8
  echo "== round $r $v"
  env $e timeout 70 $W/gq-pf bench kernels --type F32,F16,BF16 --threads 8 --reps 5 2>&1 | grep -A4 "GEMV vs ggml"
done; stamp "floats round $r"; done > $OUT/floats.txt 2>&1
for r in 1 2; do
  if [ $((r % 2)) = 1 ]; then order="main pf"; else order="pf main"; fi
  for b in $order; do bin=$GQ; [ $b = pf ] && bin=$W/gq-pf
    echo "== round $r $b"
    timeout 60 $bin bench kernels --type TQJ4_5,TQJ3_375,TQJ2_5,TQT4_5 --threads 1,8,16 --reps 3 --no-ggml 2>&1 | grep -E '^(-- [0-9]+ thread|TQ[JT][0-9_]+ )'
  done
  stamp "tq round $r"
done > $OUT/tq.txt 2>&1
uptime >> $OUT/load.txt
{ cat $OUT/load.txt $OUT/pin.txt $OUT/floats.txt $OUT/tq.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
archive
cat $OUT/summary.txt
