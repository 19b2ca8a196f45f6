#!/usr/bin/env python3
"""Throughput of embedc's CPU backend beside its peers on the same model, same
corpus, same thread count, in one run: sentence-transformers (torch CPU) and
onnxruntime (the model exported to ONNX here, with HF tokenizers and numpy
mean pooling). Every engine's time includes tokenization. Token counts come
from one tokenizer so tokens/s are comparable.

    bench/peers.py [--threads N] [--limit DOCS] [--input FILE] [--batch 32]

Needs: torch, sentence-transformers, onnxruntime, onnx, onnxscript (pip).
Prints a Markdown table for bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_texts(path, limit):
    texts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if path.endswith(".jsonl"):
                texts.append(json.loads(line)["text"])
            else:
                texts.append(line.rstrip("\n").removesuffix("\r"))
            if limit and len(texts) >= limit:
                break
    return texts


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_seq_length(model):
    """sentence-transformers' truncation length for the model (its
    sentence_bert_config.json), as embedc reads it; 512 when absent."""
    try:
        with open(os.path.join(model, "sentence_bert_config.json")) as f:
            return int(json.load(f)["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 512


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_embedc(args, texts, tmp):
    path = os.path.join(tmp, "input.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    summary = os.path.join(tmp, "embedc.json")
    cmd = [args.embedc, "bench", "-m", args.model, "-i", path, "--device", "cpu", "--threads", str(args.threads),
           "--summary-json", summary, "--fixed-lengths", "none", "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        return json.load(f)["workloads"][0]["seconds"]


def bench_st(args, texts):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    model.encode(texts[:64], batch_size=args.batch)
    return best_of(args.repeat, lambda: model.encode(texts, batch_size=args.batch, show_progress_bar=False))


def bench_ort(args, texts, tmp):
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    onnx_path = os.path.join(tmp, "model.onnx")
    hf = AutoModel.from_pretrained(args.model, dtype=torch.float32).eval()

    class Encoder(torch.nn.Module):  # plain tensors in, last_hidden_state out
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    dummy = tok(["hello world", "a longer second sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dyn = {n: {0: "batch", 1: "seq"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(Encoder(hf), tuple(dummy[n] for n in names), onnx_path, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    max_len = max_seq_length(args.model)

    def run():
        for i in range(0, len(texts), args.batch):
            enc = tok(texts[i:i + args.batch], padding=True, truncation=True, max_length=max_len, return_tensors="np")
            out = sess.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
            m = enc["attention_mask"][..., None].astype(np.float32)
            v = (out * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            v /= np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)

    run()
    return best_of(args.repeat, run)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--input", default=os.path.join(ROOT, "tests", "data", "corpus", "texts.jsonl"))
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--embedc", default=os.path.join(ROOT, "build", "host", "embedc"))
    ap.add_argument("--skip-ort", action="store_true", help="leave onnxruntime out")
    ap.add_argument("--max-tokens", type=int, default=0,
                    help="keep only documents of at most this many tokens (then --limit of those): "
                         "a workload where padding costs the batched peers little")
    args = ap.parse_args()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    if args.max_tokens:
        texts = [t for t in load_texts(args.input, 0) if len(tok(t)["input_ids"]) <= args.max_tokens][:args.limit]
    else:
        texts = load_texts(args.input, args.limit)
    ntok = sum(len(ids) for ids in tok(texts, truncation=True, max_length=max_seq_length(args.model))["input_ids"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("embedc (CPU backend, fp32)", bench_embedc(args, texts, tmp)))
        rows.append(("sentence-transformers (torch CPU, fp32, batch %d)" % args.batch, bench_st(args, texts)))
        if not args.skip_ort:
            rows.append(("onnxruntime (CPU EP, fp32, batch %d)" % args.batch, bench_ort(args, texts, tmp)))
    ref = rows[1][1]
    which = f"first {len(texts)} documents" + (f" of at most {args.max_tokens} tokens" if args.max_tokens else "")
    print(f"corpus: {os.path.relpath(args.input, ROOT)} {which}, {ntok} tokens; "
          f"threads {args.threads}; machine: {cpu_name()}, {os.cpu_count()} cores")
    print()
    print("| engine | seconds | tokens/s | documents/s | vs sentence-transformers |")
    print("|---|---|---|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.2f} | {ntok / secs:,.0f} | {len(texts) / secs:,.1f} | {ref / secs:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
