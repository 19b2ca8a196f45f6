"""Several threads on one model, the GIL released while the engine runs, and no memory
growth over many calls."""

from __future__ import annotations

import threading
import time

import numpy as np

from conftest import golden


def test_eight_threads_equal_one(model, manifest):
    texts = manifest["texts"]
    ref = model.encode(texts)
    ref_tok = model.encode(texts[:3], output_value="token_embeddings")
    results, errors = [None] * 8, []
    start = threading.Barrier(8)

    def work(i):
        try:
            start.wait()
            out = []
            for k in range(3):
                # rotate the input so threads really run different batches at once
                shift = (i + k) % len(texts)
                v = model.encode(texts[shift:] + texts[:shift])
                out.append(np.roll(v, shift, axis=0))
            t = model.encode(texts[:3], output_value="token_embeddings")
            results[i] = (out, t)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for out, tok in results:
        for v in out:
            np.testing.assert_allclose(v, ref, rtol=0, atol=1e-6)
        for a, b in zip(tok, ref_tok):
            np.testing.assert_array_equal(a, b)
    # and still sentence-transformers' vectors
    cos = (ref * golden("default.npy")).sum(1)
    assert cos.min() > 0.99999


def test_gil_is_released_while_encoding(model, manifest):
    """A Python thread keeps running while another is inside the engine: the longest
    pause it sees is far shorter than the encode call."""
    texts = manifest["texts"] * 40
    done = threading.Event()
    gaps = []

    def ticker():
        last = time.perf_counter()
        while not done.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    t0 = time.perf_counter()
    model.encode(texts)
    elapsed = time.perf_counter() - t0
    done.set()
    t.join()
    assert elapsed > 0.2, "encode too short to tell"
    assert max(gaps) < elapsed / 2, (max(gaps), elapsed)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_memory_growth_over_1000_calls(model_dirs):
    # One CPU thread: the calls are short and their timing steady on a shared machine.
    import embedc

    model = embedc.Model(model_dirs[None], device="cpu", threads=1)
    texts = ["a short sentence about cats", "une phrase en français", ""]

    def call(i):
        if i % 10 == 9:
            model.encode(texts, output_value="token_embeddings")
        elif i % 10 == 8:
            model.tokenize(texts)
        elif i % 2:
            model.encode("one string", normalize_embeddings=True, truncate_dim=64)
        else:
            model.encode(texts)

    for i in range(200):          # warm-up: allocator pools, OpenMP teams
        call(i)
    before = rss_bytes()
    for i in range(1000):
        call(i)
    growth = rss_bytes() - before
    model.close()
    # A leak of 4 KiB per call would add 4 MiB here.
    assert growth < 3 * 1024 * 1024, f"RSS grew by {growth / 1024:.0f} KiB over 1000 calls"
