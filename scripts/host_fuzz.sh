#!/usr/bin/env bash
# Runs the fuzz bundle of scripts/fuzz_bundle.sh on a many-core x86-64 Linux machine with no Rust
# and no network (libstdc++ is all the binaries need). From the repo root (the config target reads
# fixtures/):
#
#   D=.devcarry OUT=/some/dir [S=55] [FORK=16] [TOTAL=570] bash scripts/host_fuzz.sh
#
# The whole run stays within TOTAL seconds (default 570, for a 600 s command limit): a target gets
# S seconds (S_<target> for one target) or, when that would overrun, an equal share of what is left (the summary says so).
# With S=55 on 16 cores it takes about 9 x (S + 5) + 30 s.
#
# Unpacks $D/fuzz.tar.xz in /tmp, replays every kept reproducer (regressions/), then runs each of
# the 9 targets for S seconds with libFuzzer's fork mode on FORK worker processes (default: all
# cores), each input limited as in scripts/fuzz.sh (10 s, 2 GiB RSS, 1 GiB per allocation), on
# its grown corpus plus the seeds. A finding does not stop the run (-ignore_crashes etc.): every
# crash / timeout / OOM input is kept. Writes to $OUT:
#   summary.txt         target, executions, exec/s, coverage (cov: edges, ft: features), corpus
#                       size, crashes/timeouts/OOMs; then FINDINGS: none, or the list
#   artifacts/TARGET/   every crash-*, timeout-*, oom-*, slow-unit-* input
#   logs/TARGET.log     libFuzzer's output (status lines only, shortened)
#   corpus.tar.xz       the grown corpora, minimised with -merge=1 (kept under 12 MB)
# Exits 0 whatever the targets found (so the artifacts come back); FINDINGS says what.
set -uo pipefail
D=${D:-.devcarry}
OUT=${OUT:?set OUT to the folder whose files come back}
S=${S:-55}
FORK=${FORK:-$(nproc)}
TARGETS=${TARGETS:-safetensors gguf imatrix config tokenizer_json tokenizer_gguf dequantize vec_dot gguf_roundtrip}
LIMITS="-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024"
# The runner's global rayon pool: one thread per fuzz process (FORK processes share the cores).
export RAYON_NUM_THREADS=1
export GQ_FUZZ_FIXTURES=${GQ_FUZZ_FIXTURES:-$PWD/fixtures}
[ -d "$GQ_FUZZ_FIXTURES/dense" ] || echo "host_fuzz: $GQ_FUZZ_FIXTURES/dense missing: run from the repo root (the config target needs fixtures/)"

w=$(mktemp -d /tmp/gq-host-fuzz.XXXXXX)
trap 'rm -rf "$w"' EXIT
mkdir -p "$OUT/artifacts" "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tar -C "$w" -xJf "$D/fuzz.tar.xz" || { echo "host_fuzz: cannot unpack $D/fuzz.tar.xz"; exit 1; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
sum=$OUT/summary.txt
{
  echo "host: $cpu, $(nproc) logical cores; S=$S s per target, -fork=$FORK; $(date -u '+%Y-%m-%d %H:%M UTC')"
  printf "%-15s %12s %8s %7s %7s %7s %15s\n" target executions exec/s cov ft corpus crash/tmo/oom
} >"$sum"
findings=""
start=$SECONDS
total=${TOTAL:-570}
left=$(wc -w <<<"$TARGETS")
command -v xz >/dev/null || { echo "host_fuzz: xz is needed (tar -J)"; exit 1; }

for t in $TARGETS; do
  b=$w/bin/$t
  a=$OUT/artifacts/$t
  mkdir -p "$a" "$w/corpus/$t"
  if [ -d "$w/regressions/$t" ]; then
    if ! (cd "$a" && "$b" $LIMITS -runs=0 -artifact_prefix="$a/regression-" "$w/regressions/$t" >"$w/replay.log" 2>&1); then
      findings="$findings $t:regression-fails-again"
      tail -30 "$w/replay.log" >"$OUT/logs/$t-regressions.log"
    fi
  fi
  seeds=()
  [ -d "$w/seeds/$t" ] && seeds=("$w/seeds/$t")
  log=$w/$t.log
  # Time for this target: S, or an equal share of what is left before the packing (30 s).
  share=$(((total - 30 - (SECONDS - start)) / left - 6))
  left=$((left - 1))
  # S_<target> (e.g. S_vec_dot=240) overrides S for one target.
  var="S_$t"
  st=${!var:-$S}
  if [ "$share" -lt "$st" ]; then
    st=$share
    echo "$t: $st s instead of $S (TOTAL=$total)" >>"$w/notes"
  fi
  if [ "$st" -lt 3 ]; then
    echo "$t: skipped, no time left (TOTAL=$total)" >>"$w/notes"
    findings="$findings $t:not-run"
    continue
  fi
  t0=$SECONDS
  # Fork mode stops its jobs through a stop file at S seconds; the outer timeout is a backstop.
  # It runs in the artifact folder: fork mode's first pass over the corpus writes what crashes
  # into the current directory whatever -artifact_prefix says.
  (cd "$a" && timeout -k 10 $((st + 60)) "$b" -fork="$FORK" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$st" $LIMITS -artifact_prefix="$a/" -print_final_stats=1 \
    "$w/corpus/$t" "${seeds[@]}" >"$log" 2>&1)
  rc=$?
  secs=$((SECONDS - t0))
  grep -E '^#[0-9]+: |INFO: exiting|ERROR|==[0-9]+==' "$log" | tail -40 >"$OUT/logs/$t.log"
  last=$(grep -E '^#[0-9]+: ' "$log" | tail -1)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  oom_tmo_crash=$(grep -o 'oom/timeout/crash: [0-9/]*' <<<"$last" | cut -d' ' -f2)
  nart=$(find "$a" -type f | wc -l)
  [ -n "$execs" ] || { execs=0; findings="$findings $t:no-status(rc=$rc)"; tail -30 "$log" >>"$OUT/logs/$t.log"; }
  IFS=/ read -r n_oom n_tmo n_crash <<<"${oom_tmo_crash:-0/0/0}"
  printf "%-15s %12s %8s %7s %7s %7s %15s\n" "$t" "$execs" "$((execs / (secs > 0 ? secs : 1)))" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "$n_crash/$n_tmo/$n_oom" >>"$sum"
  if [ "$nart" -gt 0 ] || [ "${n_crash:-0}" != 0 ] || [ "${n_tmo:-0}" != 0 ] || [ "${n_oom:-0}" != 0 ]; then
    findings="$findings $t:$nart-artifacts(crash/timeout/oom=$n_crash/$n_tmo/$n_oom)"
  else
    rmdir "$a" 2>/dev/null
  fi
done

# The grown corpora, minimised (in parallel, bounded) and packed under 12 MB.
mkdir -p "$w/min"
for t in $TARGETS; do
  mkdir -p "$w/min/$t"
  (cd "$w" && timeout -k 5 25 "$w/bin/$t" -merge=1 $LIMITS "$w/min/$t" "$w/corpus/$t" >/dev/null 2>&1) &
done
wait
for t in $TARGETS; do
  # A merge cut short by the timeout leaves a partial set: fall back to the unminimised corpus.
  [ -n "$(ls -A "$w/min/$t")" ] || cp -r "$w/corpus/$t/." "$w/min/$t/"
done
tar -C "$w/min" -cf - . | xz -6 -T0 >"$OUT/corpus.tar.xz"
if [ "$(stat -c %s "$OUT/corpus.tar.xz")" -gt 12000000 ]; then
  # Largest corpora first out until it fits.
  for t in $(du -s "$w/min"/* | sort -rn | awk '{print $2}'); do
    rm -rf "$t"
    tar -C "$w/min" -cf - . | xz -6 -T0 >"$OUT/corpus.tar.xz"
    echo "corpus.tar.xz: left out $(basename "$t") to stay under 12 MB" >>"$sum"
    [ "$(stat -c %s "$OUT/corpus.tar.xz")" -gt 12000000 ] || break
  done
fi
[ -f "$w/notes" ] && cat "$w/notes" >>"$sum"
echo "total time: $((SECONDS - start)) s" >>"$sum"
echo "corpus.tar.xz: $(($(stat -c %s "$OUT/corpus.tar.xz") / 1000)) kB" >>"$sum"
if [ -n "$findings" ]; then
  echo "FINDINGS:$findings (inputs in artifacts/)" >>"$sum"
else
  echo "FINDINGS: none" >>"$sum"
fi
cat "$sum"
exit 0
