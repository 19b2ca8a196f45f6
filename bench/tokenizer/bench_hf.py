#!/usr/bin/env python3
"""HF tokenizers (the Python binding, encode_batch) on the same corpus and
families as bench_tokenizer; the thread count is set by RAYON_NUM_THREADS
(run.sh runs this once per thread count).  Prints: name tokens tok/s."""
import json
import os
import sys
import time

from tokenizers import Tokenizer

texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
for d in sys.argv[2:]:
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    tok.encode_batch(texts)   # warm-up
    t0 = time.perf_counter()
    rounds = 3
    n = 0
    for _ in range(rounds):
        n += sum(len(e.ids) for e in tok.encode_batch(texts))
    dt = time.perf_counter() - t0
    print(os.path.basename(d.rstrip("/")), n // rounds, round(n / dt), flush=True)
