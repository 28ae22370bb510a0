#!/usr/bin/env bash
# TurboQuant speed vs Q4_K on one host, all in the same run (issue 12's speed goals,
# docs/turboquant.md §16): GEMV of the TQ types vs Q4_K (% of the read bandwidth measured
# alongside), the n = 512 GEMM of the TQ types vs Q4_K, `gq quantize fixtures/trained` to Q4_K_M
# and TQT4_5_M, and `gq ppl` on both files.
#
#   GQ=/path/to/release/gq bash scripts/host_tq_bench.sh      (from the repository root)
#
# Needs no network and no llama.cpp (--no-ggml); writes only under a fresh /tmp directory;
# about 1–2 minutes on a 16-core host. Prints a compact summary at the end. Overrides for a
# quick local check: THREADS (GEMV thread counts, default 1,2,8), SIZE_MIB (matrix size, 384),
# GEMM_THREADS (the GEMM's larger thread count, 16),
# REPS (timed runs of quantize / ppl, 3).
set -euo pipefail

GQ=${GQ:?set GQ to a release gq binary}
[ -x "$GQ" ] || { echo "GQ=$GQ is not an executable" >&2; exit 1; }
[ -f fixtures/trained/config.json ] || { echo "run from the repository root (fixtures/trained missing)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/host_tq_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
REPS=${REPS:-3}
now() { date +%s.%N; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== gq: $GQ"

echo "== GEMV (TQ types vs Q4_K, threads 1,2,8; %bw = GEMV GB/s / read bandwidth measured alongside)"
"$GQ" bench kernels --type tqt4_5,tqt3_375,tqt2_5,tqj4_5,q4_k --threads "${THREADS:-1,2,8}" --no-ggml \
    --size-mib "${SIZE_MIB:-384}" --reps 5 > "$TMP/gemv.txt" 2>&1 || { cat "$TMP/gemv.txt"; exit 1; }
sed -n '/^paths:/,$p' "$TMP/gemv.txt"

# The GEMM (prompt processing) of the TQ types vs Q4_K at n = 512 (4096 x 14336 weights).
echo "== GEMM n=512 (TQ types vs Q4_K; 1 thread and ${GEMM_THREADS:-16})"
"$GQ" bench kernels --gemm --no-gemv --type tqt4_5,tqt3_375,tqt2_5,q4_k --threads "${GEMM_THREADS:-16}" \
    --no-ggml --reps 3 > "$TMP/gemm.txt" 2>&1 || { cat "$TMP/gemm.txt"; exit 1; }
sed -n '/^-- GEMM/,$p' "$TMP/gemm.txt"

# best_of CMD...: runs CMD $REPS times, prints the best wall time in seconds.
best_of() {
    local best="" t0 t1 d
    for _ in $(seq "$REPS"); do
        t0=$(now)
        "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }
        t1=$(now)
        d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$best" ] || lt "$d" "$best"; then best=$d; fi
    done
    echo "$best"
}

declare -A Q P
echo "== quantize fixtures/trained (best of $REPS, alternating types per round)"
for th in 2 16; do
    for ty in Q4_K_M TQT4_5_M; do Q[$ty/$th]=999; done
    for _ in $(seq "$REPS"); do
        for ty in Q4_K_M TQT4_5_M; do
            t=$(REPS=1 best_of "$GQ" quantize fixtures/trained -t "$ty" --threads "$th" -q -o "$TMP/$ty.gguf")
            if lt "$t" "${Q[$ty/$th]}"; then Q[$ty/$th]=$t; fi
        done
    done
    echo "  threads $th: Q4_K_M ${Q[Q4_K_M/$th]} s, TQT4_5_M ${Q[TQT4_5_M/$th]} s, TQ/Q4_K $(ratio "${Q[TQT4_5_M/$th]}" "${Q[Q4_K_M/$th]}")"
done
sha256sum "$TMP/TQT4_5_M.gguf" | sed "s|$TMP/||"

echo "== ppl (--chunks 4 --threads 2, best of $REPS, alternating files)"
for ty in Q4_K_M TQT4_5_M; do P[$ty]=999; done
for _ in $(seq "$REPS"); do
    for ty in Q4_K_M TQT4_5_M; do
        t=$(REPS=1 best_of "$GQ" ppl "$TMP/$ty.gguf" --text fixtures/trained/eval.txt --chunks 4 --threads 2 --json)
        if lt "$t" "${P[$ty]}"; then P[$ty]=$t; fi
    done
done
"$GQ" ppl "$TMP/TQT4_5_M.gguf" --text fixtures/trained/eval.txt --chunks 4 --threads 2 --json 2>/dev/null \
    | grep -m1 '"ppl"' | sed 's/^ */  TQT4_5_M /'

echo
echo "== SUMMARY ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
awk '/^-- [0-9]+ threads/ {th=$2; bw=$6} /^(TQ|Q4_K)/ && $1 !~ /:$/ && $2 ~ /^[0-9]+$/ && NF >= 6 {printf "  GEMV %-9s %2s thr: %6s GB/s = %6s of the read bw (%s GB/s alongside; best probe %s)\n", $1, th, $3, $6, $5, bw}' "$TMP/gemv.txt"
for th in 2 16; do
    echo "  quantize threads $th: Q4_K_M ${Q[Q4_K_M/$th]} s  TQT4_5_M ${Q[TQT4_5_M/$th]} s  ratio TQ/Q4_K $(ratio "${Q[TQT4_5_M/$th]}" "${Q[Q4_K_M/$th]}")"
done
echo "  ppl threads 2: Q4_K_M ${P[Q4_K_M]} s  TQT4_5_M ${P[TQT4_5_M]} s  ratio TQ/Q4_K $(ratio "${P[TQT4_5_M]}" "${P[Q4_K_M]}")"
awk '/^(TQ|Q4_K)/ && $2 ~ /^[0-9.]+$/ {printf "  GEMM %-9s n=512: %7s GFLOP/s 1 thr, %s GFLOP/s %s %s\n", $1, $2, $(NF-2), $(NF-1), $NF}' "$TMP/gemm.txt"
