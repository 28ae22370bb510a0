#!/usr/bin/env python3
"""A compact, checkable description of a GGUF file made with gguf-py (independent reader): every
metadata key with its value types and value (long arrays as a sha256 of their canonical form),
every tensor's type, shape and sha256 of its bytes.

  gguf_manifest.py make FILE OUT.json            write the manifest of FILE
  gguf_manifest.py check FILE MANIFEST.json [--ignore-key K ...]
                                                 exit 1 (listing differences) unless FILE matches
Used where committing the reference GGUF itself would be too large (the trained fixture).
"""
import argparse
import hashlib
import json
import sys

import numpy as np
from gguf import GGUFReader


def value(f):
    v = f.contents()
    if isinstance(v, list) and len(v) > 64:
        return {"len": len(v), "sha256": hashlib.sha256(json.dumps(v, ensure_ascii=False).encode()).hexdigest()}
    if isinstance(v, float) or (isinstance(v, list) and v and isinstance(v[0], float)):
        return repr(v)
    return v


def manifest(path):
    r = GGUFReader(path)
    kv = {k: {"types": [t.name for t in f.types], "value": value(f)}
          for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: {"type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
                        "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()}
               for t in r.tensors}
    return {"kv": kv, "tensors": tensors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "check"])
    ap.add_argument("file")
    ap.add_argument("manifest")
    ap.add_argument("--ignore-key", action="append", default=[])
    a = ap.parse_args()
    m = manifest(a.file)
    if a.cmd == "make":
        with open(a.manifest, "w") as f:
            json.dump(m, f, indent=1, ensure_ascii=False, sort_keys=True)
            f.write("\n")
        return
    with open(a.manifest) as f:
        ref = json.load(f)
    diffs = []
    for k in sorted(set(m["kv"]) | set(ref["kv"])):
        if k in a.ignore_key:
            continue
        if m["kv"].get(k) != ref["kv"].get(k):
            diffs.append(f"key {k}: {str(m['kv'].get(k))[:100]} != reference {str(ref['kv'].get(k))[:100]}")
    for n in sorted(set(m["tensors"]) | set(ref["tensors"])):
        if m["tensors"].get(n) != ref["tensors"].get(n):
            diffs.append(f"tensor {n}: {m['tensors'].get(n)} != reference {ref['tensors'].get(n)}")
    for d in diffs:
        print(d)
    print(f"{a.file} vs {a.manifest}: {len(ref['kv'])} keys, {len(ref['tensors'])} tensors, {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
