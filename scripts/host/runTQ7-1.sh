#!/bin/bash
# Host run runTQ7-1 (copied from .devcarry/tq/run-1.sh; runs from the root of a /work/main copy on
# the host with the branch's stripped gq in .devcarry/tq/gq-tq*.xz; see docs/turboquant.md §16).
# Issue 12 (helper tq, seventh session): (a) `gq ppl` wall time, trained fixture --chunks 16,
# TQT4_5_M vs Q4_K_M at 2 threads (taskset -c 0,1) and 16 threads, main's gq ($GQ) and the
# branch's gq (fused TQ activation preparation for the tiled GEMM) alternating, 4 rounds; the
# ppl output of both binaries must be identical. (b) `gq bench kernels --type TQT4_5,Q4_K
# --threads 1,2,4,8,16` (GEMV %bw vs the read bandwidth of the same run; GEMV code unchanged
# on the branch: this is the baseline for a later run). Every step time-limited, ~3.5 min.
if [ -n "$LOCALTEST" ]; then W=$(mktemp -d); GQ=$GQ_LOCAL; else source .devcarry/setup.sh; fi
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:|Thread'; } > $OUT/load.txt 2>&1
B=$(mktemp -d); xz -dc .devcarry/tq/gq-tq.xz > $B/gq; chmod +x $B/gq
for t in Q4_K_M TQT4_5_M; do timeout 30 $GQ quantize fixtures/trained -o $W/tq-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M TQT4_5_M; do timeout 30 $B/gq quantize fixtures/trained -o $B/tq-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
sha256sum $W/tq-*.gguf $B/tq-*.gguf > $OUT/sha.txt
for t in Q4_K_M TQT4_5_M; do
  timeout 30 $GQ ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks 16 --threads 16 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-main-$t.txt
  timeout 30 $B/gq ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks 16 --threads 2 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-tq-$t.txt
done
stamp setup
for th in 2 16; do
  cpus=""; [ $th = 2 ] && cpus="taskset -c 0,1"
  for r in 1 2 3 4; do for bin in main tq; do for t in Q4_K_M TQT4_5_M; do
    g=$GQ; [ $bin = tq ] && g=$B/gq
    /usr/bin/time -f "threads $th round $r $bin $t %e s wall %U s user" -a -o $OUT/ppl.txt \
      timeout 30 $cpus $g ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks 16 --threads $th > /dev/null 2>&1
  done; done; done
done
stamp ppl
timeout 150 $GQ bench kernels --type TQT4_5,Q4_K --threads ${KT:-1,2,4,8,16} --reps 5 --no-ggml ${KSIZE} > $OUT/kernels-main.txt 2>&1
stamp "kernels rc=$?"
uptime >> $OUT/load.txt
python3 - $OUT/ppl.txt > $OUT/ratios.txt 2>&1 <<'PY' || awk '{print}' $OUT/ppl.txt > $OUT/ratios.txt
import sys, collections
d = {}
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) < 8 or f[0] != 'threads': continue
    d[(f[1], f[3], f[4], f[5])] = float(f[6])
for th in ['2', '16']:
    for b in ['main', 'tq']:
        rs = sorted({k[1] for k in d if k[0] == th})
        r = [d[(th, x, b, 'TQT4_5_M')] / d[(th, x, b, 'Q4_K_M')] for x in rs if (th, x, b, 'TQT4_5_M') in d and (th, x, b, 'Q4_K_M') in d]
        print(f"threads {th} {b}: TQT4_5_M/Q4_K_M wall " + ' '.join(f'{v:.3f}' for v in r))
PY
{ cat $OUT/load.txt $OUT/sha.txt; grep . $OUT/out-*.txt; cat $OUT/ratios.txt $OUT/ppl.txt; grep -h -A8 -E '^(-- [0-9]+ thread|cpu:)' $OUT/kernels-main.txt; cat $OUT/times.txt; } > $OUT/summary.txt
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
