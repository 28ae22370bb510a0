#!/bin/bash
# Host run runTQ7-3 (copied from .devcarry/tq/run-3.sh; runs from the root of a /work/main copy on
# the host with the branch's stripped gq in .devcarry/tq/gq-tq*.xz; see docs/turboquant.md §16).
# Issue 12 (helper tq, seventh session), third and last visit: the branch's final binary (main
# merged in) against main's gq ($GQ), longer and more rounds than run-2, on the two figures
# that decide the goals: (a) `gq ppl` TQT4_5_M / Q4_K_M on the trained fixture at 16 threads
# (--chunks 122 = the whole text, 8 rounds) and 2 threads (taskset -c 0,1, --chunks 64,
# 4 rounds), binaries alternating; (b) the TQT4_5 GEMV at 16 threads (and 8) with the branch's
# default split (4 tasks per thread) vs GQ_GEMV_TASKS_PER_THREAD=1, 3 alternating rounds.
# Every step time-limited, ~3 min.
if [ -n "$LOCALTEST" ]; then W=$(mktemp -d); GQ=$GQ_LOCAL; else source .devcarry/setup.sh; fi
T0=$SECONDS
stamp() { echo "[$((SECONDS-T0)) s] $*" >> $OUT/times.txt; }
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:|Thread'; } > $OUT/load.txt 2>&1
B=$(mktemp -d); xz -dc .devcarry/tq/gq-tq3.xz > $B/gq; chmod +x $B/gq
for t in Q4_K_M TQT4_5_M; do timeout 30 $GQ quantize fixtures/trained -o $W/tq-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
for t in Q4_K_M TQT4_5_M; do
  timeout 30 $GQ ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks ${CH1:-122} --threads 16 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-main-$t.txt
  timeout 30 $B/gq ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks ${CH1:-122} --threads 16 2>&1 | grep -v 'peak RSS' | md5sum > $OUT/out-tq-$t.txt
done
stamp setup
run_ppl() { # threads chunks rounds
  local th=$1 ch=$2 cpus=""; [ $th = 2 ] && cpus="taskset -c 0,1"
  for r in $(seq $3); do for bin in main tq; do for t in Q4_K_M TQT4_5_M; do
    g=$GQ; [ $bin = tq ] && g=$B/gq
    /usr/bin/time -f "threads $th round $r $bin $t %e s wall %U s user" -a -o $OUT/ppl.txt \
      timeout 40 $cpus $g ppl $W/tq-$t.gguf --text fixtures/trained/eval.txt --chunks $ch --threads $th > /dev/null 2>&1
  done; done; done
  stamp "ppl $th"
}
run_ppl 16 ${CH1:-122} ${R1:-8}
run_ppl 2 ${CH2:-64} ${R2:-4}
for r in 1 2 3; do for k in default 1; do
  if [ $k = default ]; then env=""; else env="GQ_GEMV_TASKS_PER_THREAD=$k"; fi
  echo "== round $r tasks per thread: $k" >> $OUT/kernels.txt
  timeout 40 env $env $B/gq bench kernels --type TQT4_5,Q4_K --threads ${KT:-8,16} --reps 5 --no-ggml ${KSIZE} 2>&1 | grep -E '^(-- |TQT4_5 +[0-9]|Q4_K +[0-9])' >> $OUT/kernels.txt
  stamp "kernels $r $k"
done; done
uptime >> $OUT/load.txt
python3 - $OUT/ppl.txt > $OUT/ratios.txt 2>&1 <<'PY' || cp $OUT/ppl.txt $OUT/ratios.txt
import sys, statistics as st
d = {}
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) < 10 or f[0] != 'threads': continue
    d[(f[1], f[3], f[4], f[5])] = (float(f[6]), float(f[9]))
for th in ['2', '16']:
    for b in ['main', 'tq']:
        rs = sorted({k[1] for k in d if k[0] == th}, key=int)
        ok = [x for x in rs if (th, x, b, 'TQT4_5_M') in d and (th, x, b, 'Q4_K_M') in d]
        if not ok: continue
        w = [d[(th, x, b, 'TQT4_5_M')][0] / d[(th, x, b, 'Q4_K_M')][0] for x in ok]
        u = [d[(th, x, b, 'TQT4_5_M')][1] / d[(th, x, b, 'Q4_K_M')][1] for x in ok]
        print(f"threads {th} {b}: TQT4_5_M/Q4_K_M wall median {st.median(w):.3f} [" + ' '.join(f'{v:.3f}' for v in w) + f"]  user median {st.median(u):.3f} [" + ' '.join(f'{v:.3f}' for v in u) + "]")
PY
{ cat $OUT/load.txt; grep . $OUT/out-*.txt; cat $OUT/ratios.txt $OUT/kernels.txt $OUT/ppl.txt $OUT/times.txt; } > $OUT/summary.txt
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
rm -rf $B
cat $OUT/summary.txt
