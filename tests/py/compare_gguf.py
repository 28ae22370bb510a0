#!/usr/bin/env python3
"""Compare two GGUF files with gguf-py (an independent reader): every metadata key, its value
type and value, and every tensor's name, shape, type and raw bytes.

Usage: compare_gguf.py OURS REFERENCE [--ignore-key KEY ...]
Exit 0 when equal; otherwise prints each difference and exits 1.
"""
import argparse
import sys

import numpy as np
from gguf import GGUFReader


def fields(r, prefix=None):
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or (prefix and not k.startswith(prefix)):
            continue
        types = [t.name for t in f.types]
        val = f.contents()
        if isinstance(val, list) and val and isinstance(val[0], float):
            val = np.asarray(val, dtype=np.float32).tobytes()
        elif isinstance(val, float):
            val = np.float32(val).tobytes() if types == ["FLOAT32"] else val
        out[k] = (types, val)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("ref")
    ap.add_argument("--ignore-key", action="append", default=[])
    ap.add_argument("--only-prefix", help="compare only keys with this prefix, and no tensors")
    a = ap.parse_args()
    ours, ref = GGUFReader(a.ours), GGUFReader(a.ref)
    diffs = []
    fo, fr = fields(ours, a.only_prefix), fields(ref, a.only_prefix)
    for k in sorted(set(fo) | set(fr)):
        if k in a.ignore_key or (a.only_prefix and not k.startswith(a.only_prefix)):
            continue
        if k not in fo:
            diffs.append(f"key {k}: missing in ours (reference: {fr[k][0]})")
        elif k not in fr:
            diffs.append(f"key {k}: extra in ours ({fo[k][0]})")
        elif fo[k][0] != fr[k][0]:
            diffs.append(f"key {k}: type {fo[k][0]} != reference {fr[k][0]}")
        elif fo[k][1] != fr[k][1]:
            s1, s2 = str(fo[k][1])[:120], str(fr[k][1])[:120]
            diffs.append(f"key {k}: value {s1} != reference {s2}")
    to = {} if a.only_prefix else {t.name: t for t in ours.tensors}
    tr = {} if a.only_prefix else {t.name: t for t in ref.tensors}
    for n in sorted(set(to) | set(tr)):
        if n not in to:
            diffs.append(f"tensor {n}: missing in ours")
            continue
        if n not in tr:
            diffs.append(f"tensor {n}: extra in ours")
            continue
        x, y = to[n], tr[n]
        if x.tensor_type != y.tensor_type:
            diffs.append(f"tensor {n}: type {x.tensor_type.name} != reference {y.tensor_type.name}")
        elif list(x.shape) != list(y.shape):
            diffs.append(f"tensor {n}: shape {list(x.shape)} != reference {list(y.shape)}")
        else:
            bx, by = np.asarray(x.data).tobytes(), np.asarray(y.data).tobytes()
            if bx != by:
                nd = sum(1 for i in range(min(len(bx), len(by))) if bx[i] != by[i])
                diffs.append(f"tensor {n}: bytes differ ({nd} of {len(by)} bytes)")
    for d in diffs:
        print(d)
    n_keys = len([k for k in fr if not a.only_prefix or k.startswith(a.only_prefix)])
    print(f"{a.ours} vs {a.ref}: {n_keys} reference keys, {len(to)} tensors, {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
