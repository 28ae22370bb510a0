#!/bin/bash
# gemm helper (issue 10 item 2: GEMM n = 512 Q4_K/Q6_K >= 1.5x ggml), run 3: confirmation.
# Run 2: the guided row split (each task 1/(2 threads) of the rows left, claimed from the
# pool's counter) gave Q4_K 2.00x / 1.44x and Q6_K 2.31x / 1.74x ggml at 8 threads in two
# rounds (main 1.44x / 0.92x, 1.40x / 1.26x), because some vCPUs run vpdpbusd at half speed.
# This run: three more alternated rounds of main and this branch with ggml's MUL_MAT in each
# (spread of the ratio), the guided divisor GQ_GEMM_GUIDE = 1 and 4 against the default 2
# (gq alone), the all-16 vpdpbusd probe before and after, and pp512 on an E2B-like 8-layer
# Q4_K_M (main / this branch alternated, llama-bench once).
source .devcarry/setup.sh
T0=$SECONDS
left() { echo $((235 - (SECONDS - T0))); }
D=.devcarry/gemm; B=$(mktemp -d)
xz -dc $D/gq-gemm3.xz > $B/gq; xz -dc $D/probe.xz > $B/p; chmod +x $B/gq $B/p
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
{ for r in 1 2 3; do
    g "main, ggml $r" X=0 $GQ
    g "new, ggml $r" X=0 $B/gq
  done
  g "new GQ_GEMM_GUIDE=1" GQ_GEMM_GUIDE=1 $B/gq --no-ggml
  g "new GQ_GEMM_GUIDE=4" GQ_GEMM_GUIDE=4 $B/gq --no-ggml
  g "new" X=0 $B/gq --no-ggml
  g "new GQ_GEMM_GUIDE=1" GQ_GEMM_GUIDE=1 $B/gq --no-ggml
  g "new GQ_GEMM_GUIDE=4" GQ_GEMM_GUIDE=4 $B/gq --no-ggml
  g "new" X=0 $B/gq --no-ggml
} > $OUT/gemm.txt 2>&1
echo "gemm $((SECONDS-T0)) s" >> $OUT/times.txt
probe > $OUT/probe2.txt 2>&1
if [ $(left) -gt 80 ]; then
  timeout 40 $W/synth --shape e2b --layers 8 --out $W/e2b > $OUT/gen.log 2>&1
  timeout 40 $GQ quantize $W/e2b -o $W/e2b-q4km.gguf --type Q4_K_M --threads 16 -q >> $OUT/gen.log 2>&1
  rm -rf $W/e2b
  echo "gen $((SECONDS-T0)) s" >> $OUT/times.txt
  F=$W/e2b-q4km.gguf
  pp() { local l=$(left); [ $l -gt 45 ] && l=45; [ $l -lt 10 ] && return; echo "$1 $(timeout $l $2 bench run $F --threads 16 --reps 3 --tg 0 ${3:-} 2>&1 | grep -E '^pp' | tr -s ' ')"; }
  { pp "main+llama-bench" $GQ --peer; pp "new" $B/gq; pp "main" $GQ; pp "new" $B/gq; pp "main" $GQ; pp "new" $B/gq; } > $OUT/pp512.txt 2>&1
  echo "pp $((SECONDS-T0)) s" >> $OUT/times.txt
fi
uptime >> $OUT/load.txt
{ cat $OUT/load.txt; grep -c "1\.[0-4][0-9] per cycle" $OUT/probe.txt | sed 's/^/slow vCPUs before (<1.5\/cycle): /'; grep -c "1\.[0-4][0-9] per cycle" $OUT/probe2.txt | sed 's/^/slow vCPUs after: /'; cat $OUT/gemm.txt $OUT/pp512.txt $OUT/times.txt; } > $OUT/summary.txt 2>&1
(cd $OUT && tar czf all.tar.gz --exclude=all.tar.gz --exclude=summary.txt . && find . -type f ! -name all.tar.gz ! -name summary.txt -delete)
cat $OUT/summary.txt
