#!/usr/bin/env bash
# GEMM n = 512 (m = 4096, k = 14336) of gq's kernels against ggml's MUL_MAT
# (test-backend-ops perf) on the same CPU, for the lead's visit to the 16-core host.
#
#   GQ=/path/to/release/gq GQ_PEERS=~/.cache/gq-peers bash scripts/host_gemm_bench.sh
#
# Prints the CPU, then `gq bench kernels --no-gemv --gemm` tables: gq at 8 threads beside ggml
# at its 8 (test-backend-ops always uses half the hardware threads), gq also at 16; GFLOP/s
# and % of peak (peak = threads × measured vector clock × the type's ops/cycle; AMX not
# counted). Then BF16 with exact f32 activations (the runner's format, tiled path) and the old
# row path (GQ_GEMM=rows) of the quantized types for A/B. Each step has a time limit so the
# whole script stays under 4 minutes; a step that hits it prints what it had measured so far
# (the progress lines on stderr) and says so.
set -uo pipefail
: "${GQ:?set GQ to a release gq binary (cargo build --release: target/release/gq)}"
: "${GQ_PEERS:?set GQ_PEERS to the peers dir holding build/bin/test-backend-ops (scripts/get_peers.sh)}"
if [ ! -x "$GQ_PEERS/build/bin/test-backend-ops" ]; then
    echo "missing $GQ_PEERS/build/bin/test-backend-ops: build the peers with scripts/get_peers.sh" >&2
    exit 1
fi
export GQ_PEERS
step() {
    local limit=$1
    shift
    echo
    echo "== $* (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1
    local rc=$?
    [ $rc -eq 124 ] && echo "!! step stopped at its ${limit}s limit"
    return 0
}
echo "== $(date -u '+%F %T UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -m1 'model name' /proc/cpuinfo
echo "AMX flags: $(grep -m1 -o 'amx[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$GQ" --version 2>/dev/null || true
start=$SECONDS
step 150 "$GQ" bench kernels --no-gemv --gemm --threads 8,16 --type Q4_K,Q6_K,Q8_0,F32,F16,BF16
step 30 env GQ_KERNELS_BF16_ACT=0 "$GQ" bench kernels --no-gemv --gemm --no-ggml --threads 8,16 --type BF16
step 45 env GQ_GEMM=rows "$GQ" bench kernels --no-gemv --gemm --no-ggml --threads 8,16 --type Q4_K,Q6_K,Q8_0
echo
echo "== done in $((SECONDS - start)) s"
