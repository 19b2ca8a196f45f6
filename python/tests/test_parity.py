"""embedc from Python gives what sentence-transformers gives, option by option
(golden files from tools/make-golden-python)."""

from __future__ import annotations

import numpy as np
import pytest

import embedc
from conftest import golden

COS_MIN = 0.99999


def rows_close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Each row: cosine >= COS_MIN and the same length (cosine alone ignores scale)."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    ours = np.atleast_2d(ours).astype(np.float64)
    ref = np.atleast_2d(ref).astype(np.float64)
    no, nr = np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1)
    cos = (ours * ref).sum(1) / np.maximum(no * nr, 1e-30)
    assert cos.min() >= COS_MIN, f"worst cosine {cos.min():.7f} at row {int(cos.argmin())}"
    np.testing.assert_allclose(no, nr, rtol=1e-4)


def inputs(manifest, sel):
    texts = manifest["texts"]
    if sel == "all":
        return texts
    if sel == "tok":
        return [texts[i] for i in manifest["token_texts"]]
    return texts[sel]


def run_case(models, manifest, case):
    m = models[case["variant"]]
    saved = {k: getattr(m, k) for k in case["attrs"]}
    for k, v in case["attrs"].items():
        setattr(m, k, v)
    try:
        return getattr(m, case["method"])(inputs(manifest, case["texts"]), **case["kwargs"])
    finally:
        for k, v in saved.items():
            setattr(m, k, v)


def case_ids(manifest_cases):
    return [c["name"] for c in manifest_cases]


def load_cases():
    import json
    import os

    from conftest import GOLDEN

    with open(os.path.join(GOLDEN, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)["cases"]


FLOAT_CASES = [c for c in load_cases() if c["kwargs"].get("precision", "float32") == "float32"]
QUANT_CASES = [c for c in load_cases() if c["kwargs"].get("precision", "float32") != "float32"]


@pytest.mark.parametrize("case", FLOAT_CASES, ids=case_ids(FLOAT_CASES))
def test_float_outputs_match_sentence_transformers(models, manifest, case):
    ours = run_case(models, manifest, case)
    ref = golden(case["file"])
    if case["kwargs"].get("output_value") == "token_embeddings":
        if isinstance(case["texts"], int):   # one string in, one [tokens, hidden] array out
            assert isinstance(ours, np.ndarray) and ours.ndim == 2
        else:
            assert [t.shape[0] for t in ours] == case["counts"]
            ours = np.concatenate(ours, axis=0)
    assert ours.dtype == np.float32
    rows_close(ours, ref)


@pytest.mark.parametrize("case", QUANT_CASES, ids=case_ids(QUANT_CASES))
def test_precision_matches_quantize_embeddings(models, manifest, case):
    precision = case["kwargs"]["precision"]
    ref = golden(case["file"])
    # The function itself: quantizing sentence-transformers' own float vectors
    # gives exactly sentence-transformers' quantized output.
    st_floats = golden("default.npy")
    exact = embedc.quantize_embeddings(st_floats, precision)
    assert exact.dtype == ref.dtype and exact.shape == ref.shape
    np.testing.assert_array_equal(exact, ref)
    # Through encode(): our floats differ from torch's in the last bits, so a value
    # on a bucket edge (or a bit near 0) may land one bucket over; nothing more.
    ours = run_case(models, manifest, case)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    if precision.endswith("int8"):
        diff = np.abs(ours.astype(np.int32) - ref.astype(np.int32))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    else:
        bits = np.unpackbits(ours.view(np.uint8)) != np.unpackbits(ref.view(np.uint8))
        assert bits.mean() < 0.002


def test_similarity_matches_sentence_transformers(models, manifest):
    for s in manifest["similarities"]:
        m = models[s["variant"]]
        assert m.similarity_fn_name == s["fn"]
        ref = golden(s["file"])
        a, b = golden(s["a"] + ".npy"), golden(s["b"] + ".npy")
        got = m.similarity(a, b)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=s["name"])
        # and on embedc's own vectors for the same texts
        case = {c["name"]: c for c in manifest["cases"]}
        ours = m.similarity(run_case(models, manifest, case[s["a"]]), run_case(models, manifest, case[s["b"]]))
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4, err_msg=s["name"])


def test_similarity_functions_on_1d_inputs(models):
    v = golden("default.npy")
    for variant, m in models.items():
        full = m.similarity(v, v)
        np.testing.assert_allclose(m.similarity(v[2], v), full[2:3], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(m.similarity_pairwise(v, v[::-1]), np.diag(m.similarity(v, v[::-1])),
                                   rtol=1e-5, atol=1e-5)


def test_tokenize_matches_sentence_transformers(model, manifest):
    tok = model.tokenize(manifest["texts"])
    ids, mask = golden("tokenize_input_ids.npy"), golden("tokenize_attention_mask.npy")
    assert tok["input_ids"].shape == ids.shape
    np.testing.assert_array_equal(tok["input_ids"], ids)
    np.testing.assert_array_equal(tok["attention_mask"], mask)
    assert tok["input_ids"].dtype == np.int64


def test_model_facts(models, manifest):
    m = models[None]
    assert m.max_seq_length == manifest["max_seq_length"]
    assert m.get_sentence_embedding_dimension() == manifest["dim"]
    assert m.prompts == {} and m.default_prompt_name is None and m.similarity_fn_name == "cosine"
    from variants import PROMPTS

    assert models["prompts_dot"].prompts == PROMPTS
    assert models["default_manhattan"].default_prompt_name == "classify"
    assert models["nonorm_euclidean"].similarity_fn_name == "euclidean"


def test_sentence_transformer_class_matches(model_dirs, manifest):
    """The drop-in class with sentence-transformers' own argument names."""
    st = embedc.SentenceTransformer(model_dirs["prompts_dot"], device="cpu", truncate_dim=64,
                                    similarity_fn_name="cosine")
    texts = manifest["texts"]
    got = st.encode(texts, prompt_name="query", batch_size=16, convert_to_numpy=True)
    ref = golden("pd_query.npy")[:, :64]
    rows_close(got, ref)
    assert st.get_sentence_embedding_dimension() == 64
    assert st.similarity_fn_name == "cosine"
    # prompts given to the constructor override the model's
    st2 = embedc.SentenceTransformer(model_dirs[None], prompts={"query": "search_query: "},
                                     default_prompt_name="query")
    rows_close(st2.encode(texts), golden("prompt_literal.npy"))
    rows_close(st2.encode(texts, prompt=""), golden("default.npy"))
