#!/usr/bin/env python3
"""Hugging Face reference token ids for tests/tokenizer.rs.

Encodes, with the HF `tokenizers` library (`Tokenizer.from_file(tokenizer.json)`,
`encode(text, add_special_tokens=False)`: added tokens written in the text are matched, as
transformers does by default), the strings of tests/data/tokenizer_tricky.json and
fixtures/tokenizer-512/sample.txt with the fixtures' tokenizers, and writes the ids to
tests/data/hf_tokenizer_reference.json.

Usage: python3 tests/py/hf_tokenize_ref.py   (needs `pip install tokenizers`)
"""
import json
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]


def main():
    texts = json.loads((ROOT / "tests/data/tokenizer_tricky.json").read_text())["texts"]
    sample = (ROOT / "fixtures/tokenizer-512/sample.txt").read_text()
    out = {"generated_by": f"tests/py/hf_tokenize_ref.py (tokenizers {tokenizers.__version__})", "fixtures": {}}
    for name in ["tokenizer-512", "tokenizer-2048"]:
        tok = Tokenizer.from_file(str(ROOT / "fixtures" / name / "tokenizer.json"))
        out["fixtures"][name] = {
            "tricky": [tok.encode(t, add_special_tokens=False).ids for t in texts],
            "sample": tok.encode(sample, add_special_tokens=False).ids,
        }
    dst = ROOT / "tests/data/hf_tokenizer_reference.json"
    dst.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
