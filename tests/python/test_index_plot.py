"""embedc's FAISS indexes and pictures against the reference libraries.

Run by ctest (tests/CMakeLists.txt: pytest_index_plot) with EMBEDC set to the
CLI; needs faiss-cpu, scikit-learn, numpy, pillow and pytest from PyPI
(tests/python/requirements.txt, installed by tools/test). Indexes built by
embedc (Debian's FAISS) must open in Python faiss and answer like an index
built there from the same vectors, spec and training sample.
"""
import json
import os
import subprocess

import faiss
import numpy as np
import pytest
from PIL import Image
from sklearn.decomposition import PCA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMBEDC = os.environ.get("EMBEDC", os.path.join(ROOT, "build", "host", "embedc"))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
CORPUS = os.path.join(ROOT, "bench", "corpus", "multilingual.txt")
ENV = dict(os.environ, OMP_NUM_THREADS="1")
faiss.omp_set_num_threads(1)


def run(*args, ok=True):
    p = subprocess.run([EMBEDC, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def features():
    p = run("index", "/nonexistent.npy", "-o", "/nonexistent.faiss", ok=False)
    return "built without FAISS" not in p.stderr


needs_faiss = pytest.mark.skipif(not features(), reason="embedc built without FAISS")
needs_pictures = pytest.mark.skipif(
    "without pictures" in run("plot", "/nonexistent.npy", "-o", "/nonexistent.png", ok=False).stderr,
    reason="embedc built without pictures")
needs_model = pytest.mark.skipif(not os.path.exists(os.path.join(MODEL, "config.json")), reason="model absent")


def clustered(n, d, seed, normalize=True):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(max(n // 50, 4), d))
    x = c[rng.integers(0, len(c), n)] + 0.35 * rng.normal(size=(n, d))
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def leftovers(d):
    return [f for f in os.listdir(d) if ".partial-" in f or ".spool-" in f]


def python_index(spec, d, metric, train, base):
    ix = faiss.index_factory(d, spec, metric)
    ix.train(train)
    ix.add(base)
    return ix


# ---- index: same ntotal, same neighbours as Python faiss ---------------------

def kmeans_cost(x, centroids):
    return ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1).min(1).sum()


@needs_faiss
@pytest.mark.parametrize("spec,params", [("Flat", {}), ("IVF16,Flat", {"nprobe": 4})])
def test_index_matches_python_faiss(tmp_path, spec, params):
    x = clustered(3000, 32, 1)
    q = clustered(200, 32, 2)
    np.save(tmp_path / "v.npy", x)
    out = tmp_path / "v.faiss"
    run("index", tmp_path / "v.npy", "--index-spec", spec, "-o", out, "-q")
    ours = faiss.read_index(str(out))
    assert ours.ntotal == len(x) and ours.d == 32
    assert ours.metric_type == faiss.METRIC_INNER_PRODUCT   # unit vectors -> inner product
    # 3000 vectors are fewer than the spec's sample size: the training
    # sample is every vector, in input order.
    ref = python_index(spec, 32, faiss.METRIC_INNER_PRODUCT, x, x)
    if spec.startswith("IVF"):
        # Debian's FAISS 1.7.3 and PyPI's differ in k-means seeding, so the
        # coarse centroids are not bit-equal: ours must be as good a k-means
        # of the same sample, and with our centroids Python's index must hold
        # and find exactly what ours does.
        c_ours = faiss.extract_index_ivf(ours).quantizer.reconstruct_n(0, 16)
        c_ref = faiss.extract_index_ivf(ref).quantizer.reconstruct_n(0, 16)
        assert kmeans_cost(x, c_ours) <= 1.10 * kmeans_cost(x, c_ref)
        quant = faiss.IndexFlatIP(32)
        quant.add(c_ours)
        ref = faiss.IndexIVFFlat(quant, 32, 16, faiss.METRIC_INNER_PRODUCT)
        ref.add(x)
    ps = faiss.ParameterSpace()
    for k, v in params.items():
        ps.set_index_parameter(ours, k, v)
        ps.set_index_parameter(ref, k, v)
    d1, i1 = ours.search(q, 10)
    d2, i2 = ref.search(q, 10)
    same = (i1 == i2).mean()
    assert same >= 0.99, f"{spec}: only {same:.3f} of the neighbours agree"
    np.testing.assert_allclose(d1[i1 == i2], d2[i1 == i2], rtol=1e-4, atol=1e-4)


@needs_faiss
def test_hnsw_recall_matches_python(tmp_path):
    """HNSW graphs differ between FAISS versions; their recall must not."""
    x = clustered(3000, 32, 1)
    q = clustered(300, 32, 2)
    np.save(tmp_path / "v.npy", x)
    run("index", tmp_path / "v.npy", "--index-spec", "HNSW16", "-o", tmp_path / "h.faiss", "-q")
    ours = faiss.read_index(str(tmp_path / "h.faiss"))
    assert ours.ntotal == len(x)
    ref = python_index("HNSW16", 32, faiss.METRIC_INNER_PRODUCT, x, x)
    exact = faiss.IndexFlatIP(32)
    exact.add(x)
    _, gt = exact.search(q, 10)
    rec = []
    for ix in (ours, ref):
        ix.hnsw.efSearch = 16
        _, got = ix.search(q, 10)
        rec.append(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, gt)]))
    assert abs(rec[0] - rec[1]) <= 0.02, rec


@needs_faiss
def test_index_train_file_and_l2_metric(tmp_path):
    x = clustered(2000, 16, 3, normalize=False) * 3
    t = clustered(800, 16, 4, normalize=False) * 3
    np.save(tmp_path / "v.npy", x)
    np.save(tmp_path / "t.npy", t)
    run("index", tmp_path / "v.npy", "--index-spec", "IVF8,Flat", "--index-train", tmp_path / "t.npy",
        "-o", tmp_path / "v.faiss", "-q")
    ours = faiss.read_index(str(tmp_path / "v.faiss"))
    assert ours.metric_type == faiss.METRIC_L2 and ours.ntotal == 2000
    c_ours = faiss.extract_index_ivf(ours).quantizer.reconstruct_n(0, 8)
    ref = python_index("IVF8,Flat", 16, faiss.METRIC_L2, t, x)
    c_ref = faiss.extract_index_ivf(ref).quantizer.reconstruct_n(0, 8)
    # trained on t (not on x): as good a k-means of t as Python's
    assert kmeans_cost(t, c_ours) <= 1.10 * kmeans_cost(t, c_ref)
    assert kmeans_cost(x, c_ours) > 0


@needs_faiss
def test_ivfpq_recall_matches_python(tmp_path):
    """bench-index's recall@10 for IVF-PQ is within 0.01 of Python faiss's."""
    x = clustered(6000, 32, 5)
    np.save(tmp_path / "v.npy", x)
    spec, nprobe, hold = "IVF32,PQ8np", 4, 500
    run("bench-index", tmp_path / "v.npy", "--index-spec", spec, "--nprobe", nprobe, "--holdout", hold,
        "--summary-json", tmp_path / "s.json")
    s = json.load(open(tmp_path / "s.json"))
    base, q = x[:-hold], x[-hold:]
    ix = python_index(spec, 32, faiss.METRIC_INNER_PRODUCT, base, base)
    ix.nprobe = nprobe
    _, got = ix.search(q, 10)
    exact = faiss.IndexFlatIP(32)
    exact.add(base)
    _, gt = exact.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, gt)])
    assert s["queries"] == hold and s["vectors"] == len(base)
    assert abs(s["recall_at_10"] - recall) <= 0.01, (s["recall_at_10"], recall)
    assert 0.2 < recall < 1.0          # an approximate index, not a degenerate one
    assert s["queries_per_second"] > 0


@needs_faiss
@needs_model
def test_encode_index_with_ids_and_search(tmp_path):
    lines = [l.rstrip("\n") for l in open(CORPUS, encoding="utf-8")]
    ids = [1000 + 7 * i for i in range(len(lines))]
    with open(tmp_path / "c.jsonl", "w", encoding="utf-8") as f:
        for i, t in zip(ids, lines):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
    # IVF4: trained on the reservoir sample (all 64 documents, in order) after the stream
    run("encode", "-m", MODEL, "-i", tmp_path / "c.jsonl", "-o", tmp_path / "v.npy", "--index", tmp_path / "c.faiss",
        "--index-spec", "IVF4,Flat", "--id-field", "id", "-q")
    v = np.load(tmp_path / "v.npy")
    ours = faiss.read_index(str(tmp_path / "c.faiss"))
    assert ours.ntotal == len(lines)
    quant = faiss.IndexFlatIP(v.shape[1])
    quant.add(faiss.extract_index_ivf(ours).quantizer.reconstruct_n(0, 4))
    ref = faiss.IndexIVFFlat(quant, v.shape[1], 4, faiss.METRIC_INNER_PRODUCT)
    ref.add_with_ids(v, np.array(ids, dtype=np.int64))
    ours.nprobe = ref.nprobe = 2
    _, i1 = ours.search(v, 5)
    _, i2 = ref.search(v, 5)
    assert (i1 == i2).mean() >= 0.99
    assert set(i1[:, 0]) <= set(ids)
    # Flat with ids: an IDMap2 around the flat index
    run("encode", "-m", MODEL, "-i", tmp_path / "c.jsonl", "--index", tmp_path / "f.faiss",
        "--index-spec", "Flat", "--id-field", "id", "-q")
    f = faiss.read_index(str(tmp_path / "f.faiss"))
    assert f.ntotal == len(lines)
    np.testing.assert_array_equal(faiss.vector_to_array(f.id_map), ids)
    d3, i3 = f.search(v, 1)
    # each document finds itself (or an identical duplicate) under its id
    np.testing.assert_allclose(d3[:, 0], 1, atol=1e-4)
    np.testing.assert_allclose(v[[ids.index(i) for i in i3[:, 0]]], v, atol=1e-6)
    # no id field: ids are the document indexes, added in input order after
    # training on the reservoir sample (here every document)
    run("encode", "-m", MODEL, "-i", tmp_path / "c.jsonl", "--index", tmp_path / "n.faiss",
        "--index-spec", "IVF4,Flat", "-q")
    n = faiss.read_index(str(tmp_path / "n.faiss"))
    n.nprobe = 4
    d4, i4 = n.search(v, 1)
    np.testing.assert_allclose(d4[:, 0], 1, atol=1e-4)
    np.testing.assert_allclose(v[i4[:, 0]], v, atol=1e-6)
    # search: the query's best hit and its text
    p = run("search", "--index", tmp_path / "f.faiss", "-m", MODEL, "-k", 2, "--texts", tmp_path / "c.jsonl",
            "--id-field", "id", lines[1], "-q")
    first = [l for l in p.stdout.splitlines() if l.strip().startswith("1 ")][0].split(None, 3)
    assert int(first[1]) == ids[1] and abs(float(first[2]) - 1) < 1e-4 and first[3] == lines[1]
    assert leftovers(tmp_path) == []


# ---- bad input ------------------------------------------------------------

@needs_faiss
def test_bad_inputs_fail_cleanly(tmp_path):
    x = clustered(50, 8, 6)
    np.save(tmp_path / "v.npy", x)
    out = tmp_path / "o.faiss"
    p = run("index", tmp_path / "v.npy", "--index-spec", "IVF16,Bogus9", "-o", out, ok=False)
    assert p.returncode != 0 and "IVF16,Bogus9" in p.stderr
    p = run("index", tmp_path / "v.npy", "--index-spec", "IVF256,Flat", "-o", out, ok=False)
    assert p.returncode != 0 and "too few vectors to train" in p.stderr and "256" in p.stderr
    np.save(tmp_path / "t.npy", clustered(300, 9, 7))
    p = run("index", tmp_path / "v.npy", "--index-spec", "IVF4,Flat", "--index-train", tmp_path / "t.npy", "-o",
            out, ok=False)
    assert p.returncode != 0 and "dimension 9" in p.stderr
    (tmp_path / "foreign.faiss").write_bytes(b"PK\x03\x04 this is a zip, not an index" * 4)
    p = run("search", "--index", tmp_path / "foreign.faiss", "hello", ok=False)
    assert p.returncode != 0 and "not a FAISS index" in p.stderr
    p = run("search", "--index", tmp_path / "missing.faiss", "hello", ok=False)
    assert p.returncode != 0 and "cannot open index" in p.stderr
    p = run("bench-index", tmp_path / "v.npy", "--index-spec", "Flat", "--holdout", 50, ok=False)
    assert p.returncode != 0 and "too few" in p.stderr
    assert not out.exists() and leftovers(tmp_path) == []


@needs_faiss
@needs_model
def test_encode_bad_index_leaves_nothing(tmp_path):
    out = tmp_path / "c.faiss"
    p = run("encode", "-m", MODEL, "-i", CORPUS, "-o", tmp_path / "v.npy", "--index", out, "--index-spec",
            "IVF1024,Flat", ok=False)
    assert p.returncode != 0 and "too few vectors to train" in p.stderr
    assert not out.exists() and not (tmp_path / "v.npy").exists() and leftovers(tmp_path) == []
    # dimension mismatch: a 32-d index searched with a 384-d model
    np.save(tmp_path / "s.npy", clustered(100, 32, 8))
    run("index", tmp_path / "s.npy", "-o", tmp_path / "s.faiss", "-q")
    p = run("search", "--index", tmp_path / "s.faiss", "-m", MODEL, "hello", ok=False)
    assert p.returncode != 0 and "dimension 32" in p.stderr and "384" in p.stderr


# ---- PCA and pictures -----------------------------------------------------

def pca_points(tmp_path, x, *extra):
    np.save(tmp_path / "p.npy", x)
    run("plot", tmp_path / "p.npy", "--points-out", tmp_path / "p.tsv", *extra)
    return np.loadtxt(tmp_path / "p.tsv", skiprows=1, ndmin=2)


@pytest.mark.parametrize("n,d,seed", [(300, 40, 9), (2500, 384, 10), (50, 3, 11)])
def test_pca_matches_sklearn(tmp_path, n, d, seed):
    x = clustered(n, d, seed, normalize=False)
    got = pca_points(tmp_path, x)[:, 1:3]
    ref = PCA(2, svd_solver="full").fit_transform(x.astype(np.float64))
    sign = np.sign((ref * got).sum(0))
    np.testing.assert_allclose(got, ref * sign, atol=1e-5)


@needs_pictures
def test_large_input_draws_a_documented_sample(tmp_path):
    x = clustered(20500, 8, 13, normalize=False)
    np.save(tmp_path / "p.npy", x)
    p = run("plot", tmp_path / "p.npy", "-o", tmp_path / "p.png", "--points-out", tmp_path / "p.tsv")
    t = np.loadtxt(tmp_path / "p.tsv", skiprows=1, ndmin=2)
    assert len(t) == 20000 and t[-1, 0] < 20500 and len(set(t[:, 0])) == 20000
    ref = PCA(2, svd_solver="full").fit_transform(x.astype(np.float64))[t[:, 0].astype(int)]
    np.testing.assert_allclose(np.abs(t[:, 1:3]), np.abs(ref), atol=1e-5)   # PCA over all 20500
    assert "20000 points" in p.stderr


@needs_pictures
def test_png_size_and_labels_drawn(tmp_path):
    x = clustered(6, 16, 12, normalize=False) * 5
    words = ["king", "queen", "man", "woman", "りんご", "กล้วย"]   # CJK and Thai labels too
    (tmp_path / "l.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    np.save(tmp_path / "p.npy", x)
    run("plot", tmp_path / "p.npy", "--labels", tmp_path / "l.txt", "--width", 640, "--height", 480,
        "-o", tmp_path / "a.png", "--points-out", tmp_path / "a.tsv", "-q")
    run("plot", tmp_path / "p.npy", "--width", 640, "--height", 480, "-o", tmp_path / "b.png", "-q")
    a = np.asarray(Image.open(tmp_path / "a.png").convert("L")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b.png").convert("L")).astype(int)
    assert Image.open(tmp_path / "a.png").size == (640, 480)
    t = np.loadtxt(tmp_path / "a.tsv", skiprows=1, ndmin=2)
    assert len(t) == 6
    for row in t:
        px, py, x0, y0, x1, y1 = row[3:9]
        assert 0 <= px < 640 and 0 <= py < 480 and x1 > x0 and y1 > y0
        box = (slice(int(y0), int(y1) + 1), slice(int(x0), int(x1) + 1))
        inked = (a[box] < 200).sum()
        assert inked >= 8, f"no label drawn at {row[3:5]}"
        # the same place without labels is (nearly) background: the ink is the label's
        assert (b[box] < 200).sum() < inked / 2
    run("plot", tmp_path / "p.npy", "--labels", tmp_path / "l.txt", "-o", tmp_path / "a.svg", "-q")
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml") and "<svg" in (tmp_path / "a.svg").read_text()
    p = run("plot", tmp_path / "p.npy", "--labels", tmp_path / "l.txt", "-o", tmp_path / "a.jpg", ok=False)
    assert p.returncode != 0 and ".png or .svg" in p.stderr and leftovers(tmp_path) == []
    (tmp_path / "short.txt").write_text("one\n")
    p = run("plot", tmp_path / "p.npy", "--labels", tmp_path / "short.txt", "-o", tmp_path / "c.png", ok=False)
    assert p.returncode != 0 and "1 lines" in p.stderr and not (tmp_path / "c.png").exists()


@needs_model
@needs_pictures
def test_similarity_heatmap(tmp_path):
    out = tmp_path / "h.png"
    run("similarity", "-m", MODEL, "--heatmap", out, "-q", "king", "queen", "apple")
    im = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # the diagonal (similarity 1) is drawn in the scale's red end
    red = (im[:, :, 0] > 150) & (im[:, :, 1] < 40) & (im[:, :, 2] < 70)
    assert red.sum() > 3 * 30 * 30
