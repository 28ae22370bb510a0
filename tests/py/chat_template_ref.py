#!/usr/bin/env python3
"""Reference renderings of chat templates for tests/tokenizer.rs.

Renders each case of tests/data/chat_template_cases.json with Jinja2 configured as transformers'
apply_chat_template configures it (utils/chat_template_utils.py: ImmutableSandboxedEnvironment
with trim_blocks, lstrip_blocks and loop controls; tojson = json.dumps(ensure_ascii=False, ...);
raise_exception; strftime_now) and writes the results to tests/data/chat_template_reference.json.

Templates: "fixture" is fixtures/trained/chat_template.jinja, "gemma4" is tokenizer.chat_template
of llama.cpp's models/ggml-vocab-gemma-4.gguf (read with gguf-py), "compat" is the inline one in
the cases file. Each is recorded with its length and FNV-1a 64 hash so the Rust test knows it
renders the same template.

Usage: python3 tests/py/chat_template_ref.py LLAMA_CPP_SRC   (needs jinja2>=3.1, gguf==0.19.0)
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    src = Path(sys.argv[1])
    cases = json.loads((ROOT / "tests/data/chat_template_cases.json").read_text())
    from gguf import GGUFReader

    reader = GGUFReader(str(src / "models/ggml-vocab-gemma-4.gguf"))
    templates = {
        "fixture": (ROOT / "fixtures/trained/chat_template.jinja").read_text(),
        "gemma4": reader.fields["tokenizer.chat_template"].contents(),
        "compat": cases["compat_template"],
    }
    env = environment()
    out = {
        "generated_by": "tests/py/chat_template_ref.py (jinja2 %s, configured as transformers' apply_chat_template)"
        % jinja2.__version__,
        "templates": {k: {"chars": len(v), "fnv1a64": fnv1a64(v.encode())} for k, v in templates.items()},
        "cases": [],
    }
    for case in cases["cases"]:
        ctx = {"tools": None, "documents": None, "add_generation_prompt": False}
        ctx.update(cases["specials"])
        ctx.update(case["context"])
        row = {"name": case["name"], "template": case["template"], "context": case["context"]}
        try:
            row["rendered"] = env.from_string(templates[case["template"]]).render(**ctx)
        except jinja2.exceptions.TemplateError as e:
            row["error"] = str(e)
        out["cases"].append(row)
    dst = ROOT / "tests/data/chat_template_reference.json"
    dst.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out['cases'])} cases to {dst}")


if __name__ == "__main__":
    main()
