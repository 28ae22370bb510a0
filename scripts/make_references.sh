#!/usr/bin/env bash
# Regenerate the reference GGUFs beside each fixture with llama.cpp's own converter
# (convert_hf_to_gguf.py from the llama-cpp-python 0.3.36 sdist). Needs python with torch and
# transformers (the GPU machine has both; any machine with `pip install torch transformers` works).
# Usage: scripts/make_references.sh LLAMA_CPP_DIR [PYTHON]
set -euo pipefail
L=${1:?path to llama.cpp tree (vendor/llama.cpp of the sdist)}
PY=${2:-python3}
cd "$(dirname "$0")/.."
for d in dense e2b moe; do
  mkdir -p fixtures/$d.ref
  for t in f32 f16 bf16 q8_0; do
    PYTHONPATH="$L/gguf-py" "$PY" "$L/convert_hf_to_gguf.py" fixtures/$d --outtype $t \
      --outfile fixtures/$d.ref/convert-$t.gguf > /dev/null 2>&1
    echo "fixtures/$d.ref/convert-$t.gguf"
  done
done
