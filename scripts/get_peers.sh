#!/usr/bin/env bash
# Fetch and build gq's independent references (cached under ~/.cache/gq-peers):
#  - gguf-py 0.19.0 and numpy from PyPI (independent GGUF reader),
#  - llama.cpp from the llama-cpp-python 0.3.36 sdist on PyPI: llama-quantize, llama-perplexity,
#    llama-imatrix, llama-gguf-split, llama-tokenize, test-backend-ops (the ggml peer of
#    `gq bench kernels`), built without GGML_NATIVE (a native build takes ggml's AMX
#    path on these CPUs and llama-perplexity segfaults on quantized models).
# Idempotent: a finished build is reused. Prints the bin directory on its last line.
set -euo pipefail
PEERS=${GQ_PEERS:-$HOME/.cache/gq-peers}
VER=0.3.36
mkdir -p "$PEERS"
# gguf-py has no __version__: check the installed distribution's version.
python3 -c "import importlib.metadata as m, numpy, jinja2; assert m.version('gguf') == '0.19.0'" 2>/dev/null \
  || python3 -m pip install -q "gguf==0.19.0" numpy jinja2
# Go's text/template renders Ollama templates in tests/modelfile.rs.
command -v go >/dev/null || { apt-get update -qq && apt-get install -y -qq golang-go >/dev/null; }
SRC="$PEERS/sdist/llama_cpp_python-$VER/vendor/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  # pip prepares the sdist's metadata through scikit-build-core, which needs cmake.
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
  python3 -m pip install -q scikit-build-core numpy
  python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$PEERS/sdist" "llama-cpp-python==$VER"
  tar xzf "$PEERS/sdist/llama_cpp_python-$VER.tar.gz" -C "$PEERS/sdist"
fi
BIN="$PEERS/build/bin"
TOOLS="llama-quantize llama-perplexity llama-imatrix llama-gguf-split llama-tokenize llama-bench test-backend-ops"
need=0
for t in $TOOLS; do [ -x "$BIN/$t" ] || need=1; done
if [ $need = 1 ]; then
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
  flags="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  for f in avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    grep -qw "${f%%:*}" /proc/cpuinfo && flags="$flags -DGGML_${f##*:}=ON"
  done
  cmake -S "$SRC" -B "$PEERS/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF $flags > "$PEERS/build.log" 2>&1
  cmake --build "$PEERS/build" -j"$(nproc)" --target $TOOLS >> "$PEERS/build.log" 2>&1 \
    || { tail -30 "$PEERS/build.log"; exit 1; }
fi
echo "$BIN"
