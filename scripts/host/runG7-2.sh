#!/bin/bash
# gemm helper (issue 10 item 2: GEMM n = 512 Q4_K/Q6_K >= 1.5x ggml), run 2 of 3.
# Run 1 showed that at any time some vCPUs of this host run a vpdpbusd loop at ~half speed
# (a busy sibling hyperthread) and that handing the GEMM out as 4 row tasks per thread from the
# pool's counter instead of one range per thread gave +23-33 % at 8 threads. This branch now
# splits the rows "guided" (each task 1/(2 threads) of the rows left, the last ones small).
# Measures: gq bench kernels --gemm (8 and 16 threads) of main's gq and this branch's (guided;
# GQ_GEMM_TASKS=4 / 8: equal ranges, 4 or 8 per thread), alternated, ggml's MUL_MAT in four of
# the rounds; the probe's all-16 pass (which vCPUs are slow now); then gq bench run pp512 on an
# E2B-like 8-layer Q4_K_M (main and this branch alternated, llama-bench once).
source .devcarry/setup.sh
T0=$SECONDS
left() { echo $((235 - (SECONDS - T0))); }
D=.devcarry/gemm; B=$(mktemp -d)
xz -dc $D/gq-gemm2.xz > $B/gq; xz -dc $D/probe.xz > $B/p; chmod +x $B/gq $B/p
{ date -u '+%F %T UTC'; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|^Model:'; } > $OUT/load.txt 2>&1
probe() { for i in $(seq 0 15); do timeout 10 $B/p 30000000 $i > $B/o$i & done; wait
  for i in $(seq 0 15); do echo "all16 cpu $i: $(cat $B/o$i)"; done; }
probe > $OUT/probe.txt 2>&1
g() { # g LABEL ENV BIN [FLAGS]
  local label=$1 e=$2 bin=$3; shift 3
  local l=$(left); [ $l -gt 40 ] && l=40
  [ $l -lt 12 ] && { echo "== $label: skipped (time)"; return; }
  echo "== $label ($(date -u +%T))"
  timeout $l env $e $bin bench kernels --no-gemv --gemm --threads 8,16 --type Q4_K,Q6_K,Q8_0 "$@" 2>&1 | sed -n '/^type/,/^  Q4_K peak/p'
}
{ g "main, ggml 1" X=0 $GQ
  g "guided, ggml 1" X=0 $B/gq
  g "even 4/thread" GQ_GEMM_TASKS=4 $B/gq --no-ggml
  g "main" X=0 $GQ --no-ggml
  g "guided" X=0 $B/gq --no-ggml
  g "even 8/thread" GQ_GEMM_TASKS=8 $B/gq --no-ggml
  g "main, ggml 2" X=0 $GQ
  g "guided, ggml 2" X=0 $B/gq
} > $OUT/gemm.txt 2>&1
echo "gemm $((SECONDS-T0)) s" >> $OUT/times.txt
probe > $OUT/probe2.txt 2>&1
if [ $(left) -gt 90 ]; then
  timeout 40 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
  timeout 40 $GQ quantize $W/e2b -o $W/e2b-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/e2b
  echo "gen $((SECONDS-T0)) s" >> $OUT/times.txt
  F=$W/e2b-q4km.gguf
  pp() { local l=$(left); [ $l -gt 45 ] && l=45; [ $l -lt 10 ] && return; echo "$1 $(timeout $l $2 bench run $F --threads 16 --reps 3 --tg 0 ${3:-} 2>&1 | grep -E '^pp' | tr -s ' ')"; }
  { pp "new+llama-bench" $B/gq --peer; pp "main" $GQ; pp "new" $B/gq; pp "main" $GQ; pp "new" $B/gq; } > $OUT/pp512.txt 2>&1
  echo "pp $((SECONDS-T0)) s" >> $OUT/times.txt
fi
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; grep -c "1\.[0-4][0-9] per cycle" $OUT/probe.txt | sed 's/^/slow vCPUs before (<1.5\/cycle): /'; grep -c "1\.[0-4][0-9] per cycle" $OUT/probe2.txt | sed 's/^/slow vCPUs after: /'; cat $OUT/gemm.txt $OUT/pp512.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
