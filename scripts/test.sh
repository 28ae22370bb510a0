#!/usr/bin/env bash
# gq's test suite: fetches/builds the independent peers once (scripts/get_peers.sh: gguf-py,
# llama.cpp's tools from the llama-cpp-python 0.3.36 sdist, cached under ~/.cache/gq-peers), then
# runs every Rust test. Tests that compare against a peer fail, never skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/get_peers.sh >/dev/null
cargo test --workspace
# The TurboQuant codebook generator reproduces the committed tables (too slow unoptimised).
cargo test --release -p gq-kernels --lib tq_codebook
# The portable kernels (GQ_ISA=scalar: every CPU without a SIMD table) against transformers too:
# a release build of the gq test binary plus ~45 s on 2 cores.
GQ_ISA=scalar cargo test --release --test runner_exactness matches_transformers
