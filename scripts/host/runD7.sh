#!/bin/bash
# Issue 11, seventh session: why the trained fixture's tg at 16 threads swings by a third between
# identical processes, and which decode setting is ahead of llama-bench in every process. Many
# short tg-only processes, configurations alternated within each round (main's gq):
#   A default; B GQ_MIN_TASK_BYTES=4 MiB (every one-token step on the calling thread, workers
#   parked); C workers park at once (GQ_SPIN_US=0 GQ_PURE_SPIN_US=0); D --threads 1;
#   L llama-bench -t 16 (tg128, same file).
# Run from the repository root on the host; results in $OUT; about 3 minutes.
source scripts/host/setup.sh
T0=$SECONDS
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
for t in Q4_K_M Q8_0; do $GQ quantize fixtures/trained -o $W/tr-$t.gguf --type $t --threads 16 -q >> $OUT/gen.log 2>&1; done
B=$GQ_PEERS/build/bin
tg() { # tg LABEL ENV FILE THREADS
  echo "$1 $(timeout 30 env $2 $GQ bench run $3 --pp 0 --tg 128 --reps 3 --threads $4 2>&1 | grep -E '^tg' | tr -s ' ' | cut -d' ' -f2)"
}
ll() { # ll LABEL FILE
  echo "$1 $(timeout 40 $B/llama-bench -m $2 -p 0 -n 128 -t 16 -r 3 -o csv 2>/dev/null | tail -1 | awk -F, '{print $(NF-1)}' | tr -d '"')"
}
for t in Q4_K_M Q8_0; do
  F=$W/tr-$t.gguf
  R=8; [ $t = Q8_0 ] && R=4
  for r in $(seq $R); do
    tg "A" X=0 $F 16; tg "B" GQ_MIN_TASK_BYTES=4194304 $F 16; tg "C" "GQ_SPIN_US=0 GQ_PURE_SPIN_US=0" $F 16
    tg "D" X=0 $F 1; ll "L" $F
  done > $OUT/tg-$t.txt 2>&1
  echo "[$((SECONDS-T0)) s] $t" >> $OUT/times.txt
done
# llama-bench's csv header, to check the column read above.
timeout 40 $B/llama-bench -m $W/tr-Q4_K_M.gguf -p 0 -n 16 -t 16 -r 1 -o csv > $OUT/llcsv.txt 2>&1
uptime >> $OUT/load.txt
summ() { python3 - "$@" <<'PY'
import sys, statistics as st
for f in sys.argv[1:]:
    d = {}
    for line in open(f):
        p = line.split()
        if len(p) == 2:
            try: d.setdefault(p[0], []).append(float(p[1]))
            except ValueError: pass
    print(f)
    for k, v in d.items():
        print(f"  {k}: median {st.median(v):8.1f}  min {min(v):8.1f}  max {max(v):8.1f}  n {len(v)}  all {' '.join(f'{x:.0f}' for x in v)}")
PY
}
{ cat $OUT/load.txt; summ $OUT/tg-Q4_K_M.txt $OUT/tg-Q8_0.txt; head -2 $OUT/llcsv.txt; cat $OUT/times.txt; } > $OUT/summary.txt 2>&1
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
