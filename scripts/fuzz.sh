#!/usr/bin/env bash
# gq's fuzz targets (docs/robustness.md): cargo-fuzz + libFuzzer on the nightly toolchain.
#
#   scripts/fuzz.sh ci [SECONDS]        every target for SECONDS (default 30) from its seeds, after
#                                       replaying fuzz/regressions/; fails on any finding
#   scripts/fuzz.sh run TARGET [RUNS]   one target until RUNS executions (default 10 million),
#                                       corpus kept in ~/.cache/gq-fuzz/corpus/TARGET
#   scripts/fuzz.sh long [RUNS]         every target in turn, as `run` (hours on 2 cores)
#   scripts/fuzz.sh coverage TARGET     line coverage of the target's saved corpus (llvm-cov)
#   scripts/fuzz.sh minimize            cargo fuzz cmin of the committed seeds (fuzz/seeds/)
#
# Installs what is missing: the nightly toolchain (rustup) and cargo-fuzz, built once into
# ~/.cache/gq-tools (so a CI machine with a warm ~/.cache skips it). Findings land in
# fuzz/artifacts/TARGET/; keep each one as fuzz/regressions/TARGET/NAME with a test.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${GQ_TOOLS:-$HOME/.cache/gq-tools}
CACHE=${GQ_FUZZ_CACHE:-$HOME/.cache/gq-fuzz}
export PATH="$TOOLS/bin:$PATH"
TARGETS="safetensors gguf imatrix config tokenizer_json tokenizer_gguf dequantize vec_dot gguf_roundtrip"
# libFuzzer limits: a hang is an input slower than 10 s, an OOM one over 2 GiB, and no single
# allocation may exceed 1 GiB (an allocation sized by a file's claim shows up here).
LIMITS="-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024"
# The gguf target runs the model on rayon's global pool: one thread, not one per core, whose idle
# workers spin between inputs (vec_dot builds its own 1- and 2-thread pools).
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

setup() {
  local t0=$SECONDS
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --root "$TOOLS" --version 0.13.2 -q
  fi
  [ $((SECONDS - t0)) -gt 1 ] && echo "fuzz: toolchain setup took $((SECONDS - t0)) s"
  return 0
}

build() {
  local t0=$SECONDS
  cargo +nightly fuzz build -O "$@" 2>&1 | grep -v '^\s*Compiling' || true
  echo "fuzz: build took $((SECONDS - t0)) s"
}

# Runs TARGET with libFuzzer arguments, prints the execution count and coverage, fails on a
# finding.
run_target() {
  local t=$1; shift
  local corpus=$1; shift
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  local log
  log=$(mktemp)
  local args=("$corpus")
  [ -d "fuzz/seeds/$t" ] && args+=("fuzz/seeds/$t")
  if ! cargo +nightly fuzz run -O "$t" "${args[@]}" -- $LIMITS -print_final_stats=1 "$@" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (reproducer in fuzz/artifacts/$t/)"
    rm -f "$log"
    return 1
  fi
  local execs cov ft
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  printf "fuzz: %-15s %12s executions, coverage %s edges, %s features, 0 findings\n" "$t" "$execs" "$cov" "$ft"
  rm -f "$log"
}

# Every kept reproducer, once through its target: none may fail again.
replay() {
  for t in $TARGETS; do
    [ -d "fuzz/regressions/$t" ] || continue
    cargo +nightly fuzz run -O "$t" "fuzz/regressions/$t" -- $LIMITS -runs=0 >/dev/null 2>&1 \
      || { echo "fuzz: a regression of $t fails again"; cargo +nightly fuzz run -O "$t" "fuzz/regressions/$t" -- -runs=0 2>&1 | tail -30; exit 1; }
    echo "fuzz: $t regressions: $(ls "fuzz/regressions/$t" | wc -l) pass"
  done
}

cmd=${1:-ci}
case "$cmd" in
  ci)
    secs=${2:-${GQ_FUZZ_SECONDS:-30}}
    setup
    build
    replay
    for t in $TARGETS; do
      tmp=$(mktemp -d)
      run_target "$t" "$tmp" -max_total_time="$secs"
      rm -rf "$tmp"
    done
    ;;
  run)
    t=$2
    runs=${3:-10000000}
    setup
    build "$t"
    run_target "$t" "$CACHE/corpus/$t" -runs="$runs"
    ;;
  long)
    runs=${2:-10000000}
    setup
    build
    for t in $TARGETS; do
      nice -n 10 bash "$0" run "$t" "$runs" | tee -a "$CACHE/long.log"
    done
    ;;
  coverage)
    t=$2
    setup
    rustup component list --toolchain nightly --installed | grep -q llvm-tools || rustup component add --toolchain nightly llvm-tools-preview
    cargo +nightly fuzz coverage "$t" "$CACHE/corpus/$t" >/dev/null 2>&1
    sysroot=$(rustc +nightly --print sysroot)
    cov=$(find "$sysroot" -name llvm-cov -type f | head -1)
    bin=fuzz/target/x86_64-unknown-linux-gnu/coverage/x86_64-unknown-linux-gnu/release/$t
    "$cov" report "$bin" -instr-profile="fuzz/coverage/$t/coverage.profdata" \
      --ignore-filename-regex='/.cargo/registry|/rustc/|fuzz/' | tail -25
    ;;
  minimize)
    setup
    build
    for t in $TARGETS; do
      [ -d "fuzz/seeds/$t" ] || continue
      tmp=$(mktemp -d)
      cargo +nightly fuzz cmin -O "$t" "fuzz/seeds/$t" -- $LIMITS >/dev/null 2>&1 || true
      rm -rf "$tmp"
      echo "fuzz: $t seeds: $(ls "fuzz/seeds/$t" | wc -l) files, $(du -sh "fuzz/seeds/$t" | cut -f1)"
    done
    ;;
  *)
    sed -n 2,13p "$0"
    exit 2
    ;;
esac
