#!/usr/bin/env python3
"""Reference for gq's dequantizers, with gguf-py and numpy only.

Usage: gguf_dequant.py IN.gguf OUT_DIR
  For every tensor of IN, writes gguf.quants.dequantize of its raw bytes (any type, float types
  included) to OUT_DIR/<name>.f32 as little-endian f32, and prints "name type n" per tensor.
"""
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    r = GGUFReader(src)
    for t in r.tensors:
        raw = np.ascontiguousarray(t.data).view(np.uint8)
        vals = dequantize(raw, t.tensor_type).astype("<f4", copy=False).reshape(-1)
        vals.tofile(os.path.join(out, t.name + ".f32"))
        print(t.name, t.tensor_type.name, vals.size)


if __name__ == "__main__":
    main()
