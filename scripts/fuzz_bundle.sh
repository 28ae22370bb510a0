#!/usr/bin/env bash
# Packs gq's fuzz targets for a run on another (bigger) x86-64 Linux machine that has no Rust, no
# network and nothing installed but libstdc++ (scripts/host_fuzz.sh runs it there):
#
#   scripts/fuzz_bundle.sh DEST_DIR      # e.g. /work/main/.devcarry
#
# Builds every target with `cargo +nightly fuzz build -O` (AddressSanitizer, as scripts/fuzz.sh),
# strips the binaries, minimises each target's local corpus (~/.cache/gq-fuzz/corpus/TARGET, grown
# by `scripts/fuzz.sh run`) with libFuzzer's -merge=1, and writes ONE archive DEST_DIR/fuzz.tar.xz:
#   bin/TARGET         the stripped fuzz binaries
#   corpus/TARGET/     the minimised local corpora
#   seeds/TARGET/      fuzz/seeds (committed seeds)
#   regressions/TARGET/ fuzz/regressions (every kept reproducer; host_fuzz.sh replays them first)
# The archive must stay under LIMIT_MB (default 12): if it does not, the corpora are dropped
# (seeds and regressions kept) and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: scripts/fuzz_bundle.sh DEST_DIR}
limit_mb=${LIMIT_MB:-12}
TOOLS=${GQ_TOOLS:-$HOME/.cache/gq-tools}
CACHE=${GQ_FUZZ_CACHE:-$HOME/.cache/gq-fuzz}
export PATH="$TOOLS/bin:$PATH"
TARGETS="safetensors gguf imatrix config tokenizer_json tokenizer_gguf dequantize vec_dot gguf_roundtrip"
LIMITS="-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024"

t0=$SECONDS
nice -n 10 cargo +nightly fuzz build -O 2>&1 | grep -v '^\s*Compiling' || true
echo "fuzz_bundle: build took $((SECONDS - t0)) s"
bin=fuzz/target/x86_64-unknown-linux-gnu/release

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/b/bin" "$w/b/corpus" "$w/b/seeds" "$w/b/regressions"
for t in $TARGETS; do
  [ -x "$bin/$t" ] || { echo "fuzz_bundle: $bin/$t missing after the build" >&2; exit 1; }
  strip --strip-all -o "$w/b/bin/$t" "$bin/$t"
  # The stripped binary must still start and run an input (libstdc++, libc and libm only).
  printf 'x' >"$w/one"
  env -i "$w/b/bin/$t" -runs=1 "$w/one" >/dev/null 2>&1 \
    || { echo "fuzz_bundle: stripped $t does not run" >&2; exit 1; }
  [ -d "fuzz/seeds/$t" ] && cp -r "fuzz/seeds/$t" "$w/b/seeds/$t"
  [ -d "fuzz/regressions/$t" ] && cp -r "fuzz/regressions/$t" "$w/b/regressions/$t"
  mkdir -p "$w/b/corpus/$t"
  if [ -d "$CACHE/corpus/$t" ] && [ -n "$(ls -A "$CACHE/corpus/$t")" ]; then
    # -merge=1 keeps the smallest set of inputs with the same coverage (seeds are already in
    # the archive: merging against them keeps only what the corpus adds).
    RAYON_NUM_THREADS=1 GQ_FUZZ_FIXTURES=$PWD/fixtures nice -n 10 "$bin/$t" -merge=1 $LIMITS \
      "$w/b/corpus/$t" "$CACHE/corpus/$t" >"$w/merge-$t.log" 2>&1 \
      || { tail -20 "$w/merge-$t.log"; echo "fuzz_bundle: merging $t's corpus failed" >&2; exit 1; }
  fi
  echo "fuzz_bundle: $t: binary $(du -h "$w/b/bin/$t" | cut -f1), corpus $(ls "$w/b/corpus/$t" | wc -l) files ($(du -sh "$w/b/corpus/$t" | cut -f1)), seeds $(ls "$w/b/seeds/$t" 2>/dev/null | wc -l)"
done
ldd "$w/b/bin/gguf" | awk '{print $1}' | grep -v -E 'linux-vdso|ld-linux|lib(c|m|gcc_s|stdc\+\+)\.so' \
  && { echo "fuzz_bundle: the binaries need more than libc, libm, libgcc_s and libstdc++" >&2; exit 1; }

mkdir -p "$dest"
tar -C "$w/b" -cf - . | xz -9e -T2 >"$w/fuzz.tar.xz"
size=$(stat -c %s "$w/fuzz.tar.xz")
if [ "$size" -gt $((limit_mb * 1000000)) ]; then
  echo "fuzz_bundle: $((size / 1000)) kB with the corpora is over ${limit_mb} MB: dropping the corpora (seeds and regressions kept)"
  rm -rf "$w/b/corpus"/*
  tar -C "$w/b" -cf - . | xz -9e -T2 >"$w/fuzz.tar.xz"
  size=$(stat -c %s "$w/fuzz.tar.xz")
  [ "$size" -le $((limit_mb * 1000000)) ] \
    || { echo "fuzz_bundle: $((size / 1000)) kB even without corpora, over ${limit_mb} MB" >&2; exit 1; }
fi
mv "$w/fuzz.tar.xz" "$dest/fuzz.tar.xz"
echo "fuzz_bundle: $dest/fuzz.tar.xz, $((size / 1000)) kB (limit ${limit_mb} MB); run it with scripts/host_fuzz.sh"
