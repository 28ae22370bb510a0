#!/usr/bin/env python3
"""Print a GGUF file's key names and tensor table as gguf-py reads it (JSON):
{"keys": [...], "tensors": [[name, type, ggml-order shape, absolute offset, bytes], ...]}."""
import json
import sys

from gguf import GGUFReader

r = GGUFReader(sys.argv[1])
print(json.dumps({
    "keys": [k for k in r.fields if not k.startswith("GGUF.")],
    "tensors": [[t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.data_offset), int(t.n_bytes)]
                for t in r.tensors],
}))
