#!/usr/bin/env python3
"""The Python package beside the CLI and sentence-transformers, in one run:
the same texts, model, thread count; every time includes tokenization.

  - embedc CLI: `embedc bench` (best pass of emb_encode() in C, no Python),
  - embedc from Python: embedc.Model(...).encode(texts) (str -> UTF-8, pointer
    arrays, ctypes call, output array), best pass,
  - sentence-transformers on the CPU (torch), batch 32, best pass.

The binding's overhead is (Python - CLI) / CLI. Rounds alternate the CLI and
the binding so that a noisy machine hits both alike; each engine reports its
best pass over all rounds.

    bench/python_binding.py [--threads N] [--limit DOCS] [--rounds 3] [--skip-st]

Needs: the embedc package (pip install ./python, or EMBEDC_LIBRARY + PYTHONPATH=python),
build/host/embedc; torch + sentence-transformers for the peer row.
Prints a Markdown table for bench/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peers import cpu_name, load_texts  # noqa: E402


def cli_seconds(args, path, tmp):
    summary = os.path.join(tmp, "cli.json")
    cmd = [args.embedc, "bench", "-m", args.model, "-i", path, "--device", "cpu", "--threads", str(args.threads),
           "--summary-json", summary, "--fixed-lengths", "none", "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        w = json.load(f)["workloads"][0]
    return w["seconds"], w.get("tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--input", default=os.path.join(ROOT, "tests", "data", "corpus", "texts.jsonl"))
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--embedc", default=os.path.join(ROOT, "build", "host", "embedc"))
    ap.add_argument("--skip-st", action="store_true", help="leave sentence-transformers out")
    args = ap.parse_args()
    import embedc

    texts = load_texts(args.input, args.limit)
    model = embedc.Model(args.model, device="cpu", threads=args.threads)
    model.encode(texts[:64])
    cli_best = py_best = float("inf")
    ntok = None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        for _ in range(args.rounds):
            s, ntok = cli_seconds(args, path, tmp)
            cli_best = min(cli_best, s)
            for _ in range(2):
                t0 = time.perf_counter()
                model.encode(texts)
                py_best = min(py_best, time.perf_counter() - t0)
    rows = [("embedc CLI (`embedc bench`, C)", cli_best), ("embedc from Python (`Model.encode`)", py_best)]
    if not args.skip_st:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(args.threads)
        st = SentenceTransformer(args.model, device="cpu")
        st.encode(texts[:64], batch_size=args.batch)
        st_best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            st.encode(texts, batch_size=args.batch, show_progress_bar=False)
            st_best = min(st_best, time.perf_counter() - t0)
        rows.append((f"sentence-transformers (torch CPU, fp32, batch {args.batch})", st_best))
    print(f"corpus: {os.path.relpath(args.input, ROOT)} first {len(texts)} documents, {ntok} tokens; "
          f"threads {args.threads}; machine: {cpu_name()}, {os.cpu_count()} cores; best of {args.rounds} rounds")
    print()
    print("| engine | seconds | tokens/s | documents/s | vs CLI |")
    print("|---|---|---|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.3f} | {ntok / secs:,.0f} | {len(texts) / secs:,.1f} | {cli_best / secs:.3f}x |")
    print()
    print(f"binding overhead vs the CLI: {100 * (py_best - cli_best) / cli_best:+.1f} %")


if __name__ == "__main__":
    sys.exit(main())
