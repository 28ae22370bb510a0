#!/bin/bash
# Issue 11, seventh session, visit 2: the trained fixture's tg swings 1.8x between identical
# processes even at --threads 1 (visit 1: 1280-2285 t/s), while llama-bench -t 16 swings
# 1215-1462. Is it the address layout of each process (ASLR: cache-set conflicts / 4K aliasing
# between buffers)? Same binary, alternated: N = normal, R = `setarch -R` (no ASLR, so every
# process gets the same layout), at 1 and 16 threads; L = llama-bench -t 16. ~2 minutes.
source scripts/host/setup.sh
T0=$SECONDS
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
$GQ quantize fixtures/trained -o $W/tr-Q4_K_M.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
F=$W/tr-Q4_K_M.gguf
B=$GQ_PEERS/build/bin
tg() { # tg LABEL THREADS [PREFIX...]
  local l=$1 th=$2; shift 2
  echo "$l $(timeout 30 "$@" $GQ bench run $F --pp 0 --tg 128 --reps 3 --threads $th 2>&1 | grep -E '^tg' | tr -s ' ' | cut -d' ' -f2)"
}
ll() { echo "$1 $(timeout 40 $B/llama-bench -m $F -p 0 -n 128 -t 16 -r 3 -o csv 2>/dev/null | tail -1 | awk -F, '{print $(NF-1)}' | tr -d '"')"; }
for r in $(seq 10); do
  tg N1 1 env; tg R1 1 setarch x86_64 -R; tg N16 16 env; tg R16 16 setarch x86_64 -R
  [ $((r % 2)) = 0 ] && ll L
done > $OUT/tg.txt 2>&1
echo "[$((SECONDS-T0)) s] aslr" >> $OUT/times.txt
uptime >> $OUT/load.txt
python3 - $OUT/tg.txt > $OUT/summary.txt <<'PY'
import sys, statistics as st
d = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 2:
        try: d.setdefault(p[0], []).append(float(p[1]))
        except ValueError: pass
for k, v in d.items():
    print(f"{k}: median {st.median(v):7.1f} min {min(v):7.1f} max {max(v):7.1f} n {len(v)} all {' '.join(f'{x:.0f}' for x in v)}")
PY
{ cat $OUT/load.txt; cat $OUT/summary.txt; cat $OUT/times.txt; } > $OUT/s2.txt; mv $OUT/s2.txt $OUT/summary.txt
(cd $OUT && tar czf /tmp/all.tar.gz . && mv /tmp/all.tar.gz . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
