#!/usr/bin/env bash
# Makes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the fixtures: shrunk copies
# of the fixture checkpoints' headers and index, the fixture configs and tokenizer files, GGUF
# files written by gguf-py and llama.cpp's tools (independent writers), importance matrices from
# llama-imatrix in both formats, and blocks of every type. Run once; the result is committed
# (after `scripts/fuzz.sh minimize`). Needs the peers (scripts/get_peers.sh) and gguf-py.
set -euo pipefail
cd "$(dirname "$0")/.."
S=fuzz/seeds
BIN=$(bash scripts/get_peers.sh)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rm -rf "$S"
mkdir -p "$S"/{safetensors,config,tokenizer_json,tokenizer_gguf,gguf,imatrix,dequantize,vec_dot,gguf_roundtrip}
cargo build -q
GQ=target/debug/gq

python3 fuzz/seeds.py "$S" "$W"

# A tiny model (2 layers, width 32) converted by gq, then quantized by llama-quantize: the runner
# gets as far as the forward pass on these.
python3 scripts/make_synthetic.py "$W/tiny" --layers 2 --hidden 32 --ff 64 --heads 2 --head-dim 16 >/dev/null
for ty in f32 q8_0; do
  $GQ quantize "$W/tiny" -o "$W/tiny-$ty.gguf" --type $ty -q
done
for ty in Q4_0 Q5_1 Q4_1 Q5_0; do
  "$BIN/llama-quantize" --pure "$W/tiny-f32.gguf" "$W/tiny-$ty.gguf" $ty >/dev/null 2>&1
done
rm "$W/tiny-f32.gguf.done" 2>/dev/null || true
for f in "$W"/tiny-{q8_0,Q4_0,Q5_1,Q4_1,Q5_0}.gguf; do
  # The tokenizer keys go to the tokenizer_gguf seeds; the model seeds keep the rest.
  python3 fuzz/seeds.py --strip-tokenizer "$f" "$S/gguf/$(basename "$f")"
done

# Importance matrices of the dense fixture, both formats.
for fmt in gguf dat; do
  "$BIN/llama-imatrix" -m fixtures/dense.ref/convert-f32.gguf -f fixtures/tokenizer-512/sample.txt \
    -c 64 --chunks 2 -t 2 --output-format $fmt -o "$S/imatrix/dense.$fmt" >/dev/null 2>&1
done
ls -la "$S"/*
