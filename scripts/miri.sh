#!/usr/bin/env bash
# The readers' and the scalar formats' unit tests under Miri (undefined behaviour, out-of-bounds
# and uninitialised reads, invalid pointer use in gq's own code and the unsafe code it calls).
# Not part of CI: it takes a while (see docs/robustness.md for the time measured here).
#
# Covered: gq's GGUF reader, writer and values, safetensors (in memory: Miri cannot map files),
# the JSON limits, imatrix readers, config checks, tokenizer, crash-safe output (file system
# calls through Miri's shims), and gq-kernels' scalar formats, number conversions, type table
# and the AMX driver's prefetch address arithmetic (x86::amx::tests). Miri has no CPU feature
# detection, so every kernel takes its scalar path; the SIMD paths are checked against scalar by
# the fuzz targets and kernels/tests instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component list --toolchain nightly --installed | grep -q '^miri' \
  || rustup component add --toolchain nightly miri rust-src
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
t0=$SECONDS
cargo +nightly miri test -p gq-kernels --lib -- formats:: num:: types:: isa:: x86::amx::tests
t1=$SECONDS
# Stacked Borrows (Miri's default, the stricter model) for the readers that run no thread pool.
cargo +nightly miri test -p gq --lib -- gguf:: json:: safetensors:: imatrix:: gemma4::check gemma4::config \
  gemma4::names npy:: atomic_file::
# The tokenizer tests run rayon, whose crossbeam-epoch is known not to satisfy Stacked Borrows
# but to satisfy Tree Borrows (crossbeam's own Miri CI uses -Zmiri-tree-borrows:
# crossbeam-rs/crossbeam#996, #1181; rayon-rs/rayon#1185), and rayon's global pool threads are
# never joined (hence -Zmiri-ignore-leaks). So: every listed module under Tree Borrows.
MIRIFLAGS="$MIRIFLAGS -Zmiri-tree-borrows -Zmiri-ignore-leaks" \
  cargo +nightly miri test -p gq --lib -- gguf:: json:: safetensors:: imatrix:: gemma4::check \
  gemma4::config gemma4::names tokenizer:: npy:: atomic_file::
t2=$SECONDS
echo "miri: gq-kernels $((t1 - t0)) s, gq $((t2 - t1)) s (including builds)"
