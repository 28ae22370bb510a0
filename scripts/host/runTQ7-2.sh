#!/bin/bash
# Host run runTQ7-2 (copied from .devcarry/tq/run-2.sh; runs from the root of a /work/main copy on
# the host with the branch's stripped gq in .devcarry/tq/gq-tq*.xz; see docs/turboquant.md §16).
# Issue 12 (helper tq, seventh session), second visit. (a) `gq ppl` wall and user time on the
# trained fixture with --chunks ${CH:-64} (longer runs than run-1: runs under 1 s were noise-dominated),
# TQT4_5_M vs Q4_K_M, main's gq ($GQ) and the branch's gq alternating, 2 threads (taskset -c
# 0,1) x 4 rounds and 16 threads x 4 rounds; outputs of both binaries compared. (b) GEMV %bw
# (`gq bench kernels --type TQT4_5,Q4_K --threads 1,2,4,8,16`): the branch's gq splits a TQ
# GEMV into 4 tasks per thread (dynamic claiming; GQ_GEMV_TASKS_PER_THREAD overrides for every
# type), measured against GQ_GEMV_TASKS_PER_THREAD=1 (the old split) and =4 for Q4_K too,
# alternating. (c) `gq quantize fixtures/trained` user time at 1 thread, 5 alternations.
# Every step time-limited, ~3 min.
if [ -n "$LOCALTEST" ]; then W=$(mktemp -d); GQ=$GQ_LOCAL; else source .devcarry/setup.sh; fi
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:|Thread'; } > $OUT/load.txt 2>&1
B=$(mktemp -d); xz -dc .devcarry/tq/gq-tq2.xz > $B/gq; chmod +x $B/gq
for t in Q4_K_M TQT4_5_M; do timeout 30 $GQ quantize fixtures/trained -o $W/tq-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
timeout 30 $B/gq quantize fixtures/trained -o $B/tq-TQT4_5_M.gguf --type TQT4_5_M --threads 16 -q >> $OUT/gen.log 2>&1
sha256sum $W/tq-*.gguf $B/tq-*.gguf > $OUT/sha.txt
for t in Q4_K_M TQT4_5_M; do
  timeout 30 $GQ ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks ${CH:-64} --threads 16 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-main-$t.txt
  timeout 30 $B/gq ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks ${CH:-64} --threads 2 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-tq-$t.txt
done
stamp setup
for th in 2 16; do
  cpus=""; [ $th = 2 ] && cpus="taskset -c 0,1"
  for r in ${RR:-1 2 3 4}; do for bin in main tq; do for t in Q4_K_M TQT4_5_M; do
    g=$GQ; [ $bin = tq ] && g=$B/gq
    /usr/bin/time -f "threads $th round $r $bin $t %e s wall %U s user" -a -o $OUT/ppl.txt \
      timeout 30 $cpus $g ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks ${CH:-64} --threads $th > /dev/null 2>&1
  done; done; done
  stamp "ppl $th"
done
for r in 1 2 3; do for t in Q4_K_M TQT4_5_M; do for bin in main tq; do
  g=$GQ; [ $bin = tq ] && g=$B/gq
  /usr/bin/time -f "round $r $bin $t %e s wall %U s user" -a -o $OUT/quant.txt \
    timeout 30 $g quantize fixtures/trained -o $W/q-$bin-$t.gguf --type $t --threads 1 -q > /dev/null 2>&1
done; done; done
stamp quant
for r in 1 2; do for k in default 1 4; do
  if [ $k = default ]; then env=""; else env="GQ_GEMV_TASKS_PER_THREAD=$k"; fi
  echo "== round $r tasks per thread: $k" >> $OUT/kernels.txt
  timeout 60 env $env $B/gq bench kernels --type TQT4_5,Q4_K --threads ${KT:-1,2,4,8,16} --reps 5 --no-ggml ${KSIZE} 2>&1 | grep -E '^(-- |TQT4_5 +[0-9]|Q4_K +[0-9])' >> $OUT/kernels.txt
  stamp "kernels $r $k"
done; done
uptime >> $OUT/load.txt
python3 - $OUT/ppl.txt > $OUT/ratios.txt 2>&1 <<'PY' || cp $OUT/ppl.txt $OUT/ratios.txt
import sys
d = {}
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) < 10 or f[0] != 'threads': continue
    d[(f[1], f[3], f[4], f[5])] = (float(f[6]), float(f[9]))
for th in ['2', '16']:
    for b in ['main', 'tq']:
        rs = sorted({k[1] for k in d if k[0] == th})
        ok = [x for x in rs if (th, x, b, 'TQT4_5_M') in d and (th, x, b, 'Q4_K_M') in d]
        w = [d[(th, x, b, 'TQT4_5_M')][0] / d[(th, x, b, 'Q4_K_M')][0] for x in ok]
        u = [d[(th, x, b, 'TQT4_5_M')][1] / d[(th, x, b, 'Q4_K_M')][1] for x in ok]
        print(f"threads {th} {b}: TQT4_5_M/Q4_K_M wall " + ' '.join(f'{v:.3f}' for v in w) + "  user " + ' '.join(f'{v:.3f}' for v in u))
PY
{ cat $OUT/load.txt $OUT/sha.txt; grep . $OUT/out-*.txt; cat $OUT/ratios.txt $OUT/ppl.txt $OUT/quant.txt $OUT/kernels.txt $OUT/times.txt; } > $OUT/summary.txt
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
rm -rf $B
cat $OUT/summary.txt
