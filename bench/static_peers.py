#!/usr/bin/env python3
"""Static models beside their reference implementations, same texts, same
threads, one run: documents/s of embedc encode vs model2vec StaticModel.encode
(models/tokenlearn-static) and vs gensim KeyedVectors.get_mean_vector per
document (models/glove-6b-50d, embedc's word splitter re-done in Python).
Times exclude model loading on both sides (embedc: its summary's seconds).

    python3 bench/static_peers.py [--threads N] [--repeat R]
Needs: pip install model2vec gensim numpy; tools/fetch-model tokenlearn-static glove-6b-50d
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3, help="copies of the corpus")
    ap.add_argument("--embedc", default=os.path.join(ROOT, "build", "host", "embedc"))
    a = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    corpus = os.path.join(ROOT, "tests", "data", "corpus", "texts.jsonl")
    lines = [l for l in open(corpus, encoding="utf-8").read().split("\n") if l] * a.repeat
    texts = [json.loads(l)["text"] for l in lines]
    tmp = tempfile.mkdtemp()
    inp = os.path.join(tmp, "in.jsonl")
    open(inp, "w", encoding="utf-8").write("\n".join(lines) + "\n")

    def embedc(model, *extra):
        js = os.path.join(tmp, "s.json")
        subprocess.run([a.embedc, "encode", "-q", "-m", model, "-i", inp, "-o", os.path.join(tmp, "o.npy"),
                        "--threads", str(a.threads), "--summary-json", js, *extra], check=True)
        return json.load(open(js))["documents_per_second"]

    rows = []
    m2v_dir = os.path.join(ROOT, "models", "tokenlearn-static")
    if os.path.isdir(m2v_dir):
        from model2vec import StaticModel
        m = StaticModel.from_pretrained(m2v_dir)
        m.encode(texts[:100])
        t = time.perf_counter()
        m.encode(texts, use_multiprocessing=a.threads > 1)
        ref = len(texts) / (time.perf_counter() - t)
        rows.append(("tokenlearn-static (model2vec int8)", "model2vec StaticModel.encode", ref, embedc(m2v_dir)))
    glove = os.path.join(ROOT, "models", "glove-6b-50d", "glove.6B.50d.w2v.bin")
    if os.path.exists(glove):
        from gensim.models import KeyedVectors
        from importlib.machinery import SourceFileLoader
        g = SourceFileLoader("g", os.path.join(ROOT, "tools", "make-static-golden")).load_module()
        kv = KeyedVectors.load_word2vec_format(glove, binary=True)
        t = time.perf_counter()
        for d in texts:
            keys = [w for w in g.split_words(g.lower(d)) if w in kv.key_to_index]
            if keys:
                kv.get_mean_vector(keys, pre_normalize=False)
        ref = len(texts) / (time.perf_counter() - t)
        rows.append(("GloVe 6B 50d (word2vec binary), mean", "gensim get_mean_vector (1 thread)", ref, embedc(glove)))
    print(f"{len(texts)} documents (tests/data/corpus x{a.repeat}), {a.threads} threads\n")
    print("| model | peer | peer docs/s | embedc docs/s | ratio |\n|---|---|---|---|---|")
    for name, peer, ref, ours in rows:
        print(f"| {name} | {peer} | {ref:,.0f} | {ours:,.0f} | {ours / ref:.1f}x |")


if __name__ == "__main__":
    sys.exit(main())
