#!/usr/bin/env python3
"""Renders a chat template with Jinja2 set up as transformers' apply_chat_template sets it up
(trim_blocks, lstrip_blocks, loop controls), for gq's Modelfile test.

Usage: jinja_render.py < {"template": "...", "messages": [...], "bos_token": "...", "eos_token": "..."}
Prints the rendering with add_generation_prompt=True.
"""
import json
import sys

import jinja2

d = json.load(sys.stdin)
env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
t = env.from_string(d["template"])
sys.stdout.write(t.render(messages=d["messages"], add_generation_prompt=True,
                          bos_token=d.get("bos_token", ""), eos_token=d.get("eos_token", "")))
