#!/usr/bin/env python3
"""Seed inputs for gq's fuzz targets, from the fixtures (called by fuzz/make_seeds.sh).

  seeds.py SEED_DIR WORK_DIR            write the seeds that need no llama.cpp tool
  seeds.py --strip-tokenizer IN OUT     copy a GGUF without its tokenizer.* keys (gguf-py)
"""
import json
import random
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
SEP = b"\xff\xfeGQFILE\xfe\xff"


def shrink_safetensors(path: Path) -> bytes:
    """The shard's header with every dimension cut to at most 2, data zeros: same names,
    dtypes and ranks, a few hundred bytes of data."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8 : 8 + n])
    out, off = {}, 0
    if "__metadata__" in h:
        out["__metadata__"] = h.pop("__metadata__")
    for name in sorted(h):
        e = h[name]
        shape = [min(d, 2) for d in e["shape"]]
        size = {"F32": 4, "BF16": 2, "F16": 2}[e["dtype"]] * int(np.prod(shape))
        out[name] = {"dtype": e["dtype"], "shape": shape, "data_offsets": [off, off + size]}
        off += size
    hb = json.dumps(out, separators=(",", ":")).encode()
    return struct.pack("<Q", len(hb)) + hb + b"\0" * off


def copy_gguf(src: Path, dst: Path, keep_key, keep_tensors=True, shrink_vocab=False):
    """Rewrites a GGUF with gguf-py: the keys `keep_key` accepts, and the tensors."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or not keep_key(name):
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    if keep_tensors:
        for t in r.tensors:
            data = t.data
            if t.name == "token_embd.weight" and shrink_vocab:
                data = data[:16]  # 16 tokens are enough for the forward pass
            w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def every_type_gguf(dst: Path):
    """One small tensor of every type gq implements, plus metadata of every value type."""
    w = gguf.GGUFWriter(str(dst), "gemma4")
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 700)
    w.add_int16("t.i16", -700)
    w.add_uint32("t.u32", 70000)
    w.add_int32("t.i32", -70000)
    w.add_float32("t.f32", 0.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "gemma")
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", 0.25)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "bc"])
    rng = np.random.default_rng(1)
    Q = gguf.GGMLQuantizationType
    for ty, bs, bb in [(Q.F32, 1, 4), (Q.F16, 1, 2), (Q.BF16, 1, 2), (Q.Q4_0, 32, 18), (Q.Q4_1, 32, 20),
                       (Q.Q5_0, 32, 22), (Q.Q5_1, 32, 24), (Q.Q8_0, 32, 34), (Q.Q2_K, 256, 84),
                       (Q.Q3_K, 256, 110), (Q.Q4_K, 256, 144), (Q.Q5_K, 256, 176), (Q.Q6_K, 256, 210)]:
        n = bs * (2 if bs > 1 else 8)
        data = rng.integers(0, 256, size=(2, (n // bs) * bb), dtype=np.uint8)
        # gguf-py takes quantized data as rows of bytes.
        w.add_tensor(f"t.{ty.name.lower()}", data, raw_dtype=ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def f16(x):
    return np.float16(x).tobytes()


def blocks(ty: str, nb: int, rng: random.Random) -> bytes:
    """nb blocks of random quants with plausible f16 scale fields."""
    bb = {"F32": 4, "F16": 2, "BF16": 2, "Q4_0": 18, "Q4_1": 20, "Q5_0": 22, "Q5_1": 24, "Q8_0": 34,
          "Q8_1": 36, "Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210, "Q8_K": 292}[ty]
    fields = {"Q4_0": [0], "Q5_0": [0], "Q8_0": [0], "Q8_1": [0, 2], "Q4_1": [0, 2], "Q5_1": [0, 2],
              "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}.get(ty, [])
    out = bytearray()
    for _ in range(nb):
        if ty == "F32":
            out += struct.pack("<f", rng.gauss(0, 1))
            continue
        if ty in ("F16", "BF16"):
            v = np.float32(rng.gauss(0, 1))
            out += f16(v) if ty == "F16" else (v.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            continue
        b = bytearray(rng.randrange(256) for _ in range(bb))
        for o in fields:
            b[o : o + 2] = f16(rng.choice([0.01, -0.02, 0.5, 1.0]))
        if ty == "Q8_K":
            b[0:4] = struct.pack("<f", 0.01)
        out += b
    return bytes(out)


def main(seeds: Path, work: Path):
    rng = random.Random(7)
    # safetensors: single files and an index with its shards.
    st = seeds / "safetensors"
    for name in ("moe", "e2b", "trained"):
        single = FIX / name / "model.safetensors"
        if single.exists():
            (st / name).write_bytes(SEP + shrink_safetensors(single))
    idx = json.loads((FIX / "dense/model.safetensors.index.json").read_text())
    shards = sorted(set(idx["weight_map"].values()))
    parts = [json.dumps(idx).encode()] + [shrink_safetensors(FIX / "dense" / s) for s in shards]
    (st / "dense-index").write_bytes(SEP.join(parts))
    # config.json of every fixture and the 26B config.
    for name in ("dense", "moe", "e2b", "trained", "configs/gemma-4-26b-a4b"):
        (seeds / "config" / name.replace("/", "-")).write_bytes((FIX / name / "config.json").read_bytes())
    # tokenizer files.
    tok = FIX / "tokenizer-512"
    (seeds / "tokenizer_json" / "tokenizer-512").write_bytes(SEP.join([
        (tok / "tokenizer.json").read_bytes(), (tok / "tokenizer_config.json").read_bytes(),
        (FIX / "moe/config.json").read_bytes(), (tok / "chat_template.jinja").read_bytes()]))
    (seeds / "tokenizer_json" / "tokenizer-only").write_bytes((tok / "tokenizer.json").read_bytes())
    # The tokenizer keys of a converted fixture (llama.cpp's converter wrote them).
    copy_gguf(FIX / "moe.ref/convert-q8_0.gguf", seeds / "tokenizer_gguf" / "moe-tokenizer.gguf",
              lambda k: k.startswith("tokenizer.") or k.startswith("general."), keep_tensors=False)
    every_type_gguf(seeds / "gguf" / "every-type.gguf")
    # Blocks of every type for the kernels.
    impl = ["F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
            "Q6_K", "Q8_K", "BF16"]
    # The dequantize target picks `implemented()[byte % 15]`, in GgmlType declaration order.
    order = ["F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
             "Q6_K", "Q8_K", "BF16"]
    assert sorted(order) == sorted(impl)
    for i, ty in enumerate(order):
        nb = 3 if ty not in ("F32", "F16", "BF16") else 70
        (seeds / "dequantize" / ty).write_bytes(bytes([i]) + blocks(ty, nb, rng))
    weights = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
    for i, ty in enumerate(weights):
        for mode in (0, 1):
            head = bytes([i, mode]) + (bytes([0, 70]) if ty in ("F32", "F16", "BF16") else bytes([1]))
            nb = 71 if ty in ("F32", "F16", "BF16") else 2
            acts = b"".join(struct.pack("<f", rng.gauss(0, 3)) for _ in range(512))
            (seeds / "vec_dot" / f"{ty}-{mode}").write_bytes(head + blocks(ty, nb, rng) + acts)
    for i in range(4):
        (seeds / "gguf_roundtrip" / f"r{i}").write_bytes(bytes(rng.randrange(256) for _ in range(64 << i)))


if __name__ == "__main__":
    if sys.argv[1] == "--strip-tokenizer":
        copy_gguf(Path(sys.argv[2]), Path(sys.argv[3]), lambda k: not k.startswith("tokenizer."),
                  shrink_vocab=True)
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
