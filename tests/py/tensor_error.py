#!/usr/bin/env python3
"""Independent per-tensor error of a quantized GGUF against an unquantized one, with gguf-py.

Usage: tensor_error.py QUANTIZED.gguf REFERENCE.gguf NAME [NAME ...]
Prints one JSON object: {NAME: {"type": T, "rmse": r, "rel_mse": m, "max_abs_err": e}, ...},
with both tensors dequantized by gguf.quants.dequantize and the sums taken in float64.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def values(reader, name):
    for t in reader.tensors:
        if t.name == name:
            raw = np.ascontiguousarray(t.data).view(np.uint8)
            return t.tensor_type.name, dequantize(raw, t.tensor_type).astype(np.float64).reshape(-1)
    raise SystemExit(f"{name}: not in the file")


def main():
    q, ref = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    out = {}
    for name in sys.argv[3:]:
        ty, a = values(q, name)
        _, w = values(ref, name)
        err = w - a
        out[name] = {
            "type": ty,
            "rmse": float(np.sqrt(np.mean(err * err))),
            "rel_mse": float(np.sum(err * err) / np.sum(w * w)),
            "max_abs_err": float(np.max(np.abs(err))),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
