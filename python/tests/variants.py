"""Variants of a model directory for the parity tests, shared by tools/make-golden-python
(which embeds them with sentence-transformers) and the tests (which embed them with embedc).

A variant is the same weights with different sentence-transformers files: every
file of the source directory is symlinked except the JSON files a variant
rewrites. So one downloaded model exercises prompts, default prompts, every
similarity function and a model without a Normalize module.
"""

from __future__ import annotations

import json
import os

PROMPTS = {"query": "query: ", "document": "passage: ", "classify": "Classify the topic: "}

VARIANTS = {
    # prompts and a dot-product similarity
    "prompts_dot": {"prompts": PROMPTS, "similarity_fn_name": "dot"},
    # a default prompt, manhattan similarity
    "default_manhattan": {"prompts": PROMPTS, "default_prompt_name": "classify", "similarity_fn_name": "manhattan"},
    # no Normalize module (so normalize_embeddings changes the output), euclidean similarity
    "nonorm_euclidean": {"drop_normalize": True, "similarity_fn_name": "euclidean"},
}


def make_variant(src: str, dst: str, name: str) -> str:
    """Builds variant `name` of model directory src in dst (created); returns dst."""
    spec = VARIANTS[name]
    os.makedirs(dst, exist_ok=True)
    src = os.path.realpath(src)
    rewritten = {"config_sentence_transformers.json", "modules.json"}
    for entry in os.listdir(src):
        if entry in rewritten:
            continue
        link = os.path.join(dst, entry)
        if os.path.isdir(os.path.join(src, entry)):
            # Module folders must be inside the model directory (embedc refuses
            # one that resolves elsewhere); the files in them may link anywhere.
            os.makedirs(link, exist_ok=True)
            for f in os.listdir(os.path.join(src, entry)):
                if not os.path.lexists(os.path.join(link, f)):
                    os.symlink(os.path.join(src, entry, f), os.path.join(link, f))
        elif not os.path.lexists(link):
            os.symlink(os.path.join(src, entry), link)
    with open(os.path.join(src, "modules.json")) as f:
        modules = json.load(f)
    if spec.get("drop_normalize"):
        modules = [m for m in modules if not m["type"].endswith("Normalize")]
    with open(os.path.join(dst, "modules.json"), "w") as f:
        json.dump(modules, f, indent=2)
    cfg = {}
    cfg_path = os.path.join(src, "config_sentence_transformers.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    for key in ("prompts", "default_prompt_name", "similarity_fn_name"):
        if key in spec:
            cfg[key] = spec[key]
    with open(os.path.join(dst, "config_sentence_transformers.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return dst
