#!/usr/bin/env python3
"""Reference data for gq's block-quantizer tests, made with gguf-py and numpy only.

Usage:
  quant_ref.py stress IN.gguf OUT.gguf SEED
      Copy IN's metadata and 1-D tensors; replace every 2-D tensor by F32 data of the same
      shape built from adversarial 16-element groups (zeros, one huge value, all negative,
      constants, ties on half steps, values below ggml's 1e-15 threshold, ...).
  quant_ref.py imatrix IN.gguf OUT.dat SEED
      Write a legacy-format importance matrix (ncall = 1, so llama-quantize uses the values as
      stored) for every 2-D tensor of IN: random positive weights with exact zeros and a run of
      32 zero columns.
  quant_ref.py quantize TYPE N_PER_ROW IN.f32 OUT.bin
      gguf.quants.quantize of the rows of IN.f32 to TYPE (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import quantize

FLOAT_TYPES = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}


def stress_values(rng, rows, cols):
    """rows x cols float32, built per group of 16 from a mix of patterns."""
    g = rng.standard_normal((rows * cols // 16, 16)).astype(np.float32)
    scale = (10.0 ** rng.uniform(-4, 1, (g.shape[0], 1))).astype(np.float32)
    kind = rng.integers(0, 12, g.shape[0])
    out = g * scale
    out[kind == 1] = 0
    # one huge value among small ones
    sel = np.nonzero(kind == 2)[0]
    out[sel] = g[sel] * np.float32(0.01)
    out[sel, rng.integers(0, 16, sel.size)] = rng.choice([-1, 1], sel.size) * rng.uniform(50, 3e4, sel.size)
    out[kind == 3] = -np.abs(out[kind == 3])
    out[kind == 4] = np.abs(out[kind == 4])
    sel = np.nonzero(kind == 5)[0]
    out[sel] = (rng.choice([-1, 1], sel.size) * rng.uniform(0.01, 5, sel.size))[:, None]
    out[kind == 6] = g[kind == 6] * np.float32(1e-20)
    out[kind == 7] = g[kind == 7] * np.float32(1e-13)
    sel = np.nonzero(kind == 8)[0]
    out[sel] = rng.integers(-16, 17, (sel.size, 16)).astype(np.float32) * np.float32(0.5) * scale[sel]
    sel = np.nonzero(kind == 9)[0]
    out[sel] = 0
    out[sel, rng.integers(0, 16, sel.size)] = g[sel, 0] * scale[sel, 0]
    sel = kind == 10
    out[sel] = rng.uniform(-1, 1, (int(sel.sum()), 16)).astype(np.float32) * scale[sel]
    # large, but not so large that a weighted search can push an f16 scale or min past 65504
    # (llama-quantize rejects such output, and gq would reproduce the same infinity)
    out[kind == 11] = g[kind == 11] * np.float32(1e3)
    out = out.astype(np.float32).reshape(rows, cols)
    # whole rows: zero, constant
    r = rng.random(rows)
    out[r < 0.04] = 0
    out[(r >= 0.04) & (r < 0.07)] = np.float32(0.3)
    return out


def copy_fields(reader, writer):
    for name, f in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        main = f.types[0]
        sub = f.types[-1] if main == GGUFValueType.ARRAY else None
        writer.add_key_value(name, f.contents(), main, sub)


def cmd_stress(src, dst, seed):
    rng = np.random.default_rng(int(seed))
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    copy_fields(r, w)
    for t in r.tensors:
        if len(t.shape) >= 2:
            cols, rows = int(t.shape[0]), int(np.prod(t.shape[1:]))
            data = stress_values(rng, rows, cols).reshape(tuple(int(d) for d in reversed(t.shape)))
            w.add_tensor(t.name, data)
        else:
            assert t.tensor_type == GGMLQuantizationType.F32, t.name
            w.add_tensor(t.name, np.asarray(t.data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def cmd_imatrix(src, dst, seed):
    rng = np.random.default_rng(int(seed))
    entries = []
    for t in GGUFReader(src).tensors:
        if len(t.shape) < 2:
            continue
        n = int(t.shape[0])
        v = (rng.uniform(0, 3, n) ** 2).astype(np.float32)
        v[rng.random(n) < 0.1] = 0
        start = int(rng.integers(0, n - 32)) if n > 32 else 0
        v[start:start + 32] = 0
        v[rng.random(n) < 0.01] = np.float32(1e3)
        entries.append((t.name, v))
    with open(dst, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, v in entries:
            b = name.encode()
            f.write(struct.pack("<i", len(b)) + b + struct.pack("<ii", 1, v.size) + v.tobytes())


def cmd_quantize(ty, n, src, dst):
    x = np.fromfile(src, dtype="<f4").reshape(-1, int(n))
    quantize(x, GGMLQuantizationType[ty]).tofile(dst)


def main():
    cmds = {"stress": cmd_stress, "imatrix": cmd_imatrix, "quantize": cmd_quantize}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    with np.errstate(all="ignore"):
        cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
