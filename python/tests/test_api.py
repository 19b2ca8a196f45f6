"""Shapes and types of encode() outputs, and one exception per kind of bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import embedc
from conftest import MODEL

TEXTS = ["a cat sits on the mat", "un chat", "stock prices fell"]


def test_string_gives_1d_list_gives_2d(model):
    one = model.encode("a cat sits on the mat")
    many = model.encode(TEXTS)
    assert one.shape == (384,) and one.dtype == np.float32
    assert many.shape == (3, 384) and many.dtype == np.float32
    np.testing.assert_array_equal(one, many[0])
    assert model.encode(tuple(TEXTS)).shape == (3, 384)
    assert model.encode(np.array(TEXTS)).shape == (3, 384)
    assert model.encode(t for t in TEXTS).shape == (3, 384)
    assert model.encode([]).shape == (0, 384)
    assert model.encode(["only one"]).shape == (1, 384)


def test_output_kinds(model):
    as_list = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 3 and as_list[0].shape == (384,)
    tok = model.encode(TEXTS, output_value="token_embeddings")
    assert isinstance(tok, list) and [t.shape[1] for t in tok] == [384] * 3
    counts = model.tokenize(TEXTS)["attention_mask"].sum(1)
    assert [t.shape[0] for t in tok] == list(counts)
    assert model.encode([], output_value="token_embeddings") == []
    assert model.encode(TEXTS, precision="ubinary").shape == (3, 48)
    assert model.encode(TEXTS, precision="binary").dtype == np.int8
    assert model.encode(TEXTS, precision="uint8").dtype == np.uint8
    assert model.encode(TEXTS, truncate_dim=32).shape == (3, 32)
    q = model.encode(TEXTS, output_value="token_embeddings", precision="int8")
    assert [a.dtype for a in q] == [np.int8] * 3


def test_batch_tokens_and_progress_do_not_change_vectors(model, capsys):
    ref = model.encode(TEXTS * 20)
    np.testing.assert_array_equal(model.encode(TEXTS * 20, batch_tokens=16, batch_size=2), ref)
    np.testing.assert_array_equal(model.encode(TEXTS * 20, show_progress_bar=True), ref)
    assert "60" in capsys.readouterr().err


def test_max_seq_length_setter(model_dirs):
    m = embedc.Model(model_dirs[None], max_seq_length=8)
    assert m.max_seq_length == 8
    assert m.tokenize(["one two three four five six seven eight nine ten"])["input_ids"].shape == (1, 8)
    m.max_seq_length = 512
    assert m.max_seq_length == 512
    with pytest.raises(ValueError, match="max_seq_length 513"):
        m.max_seq_length = 513
    with pytest.raises(ValueError, match="max_seq_length"):
        m.max_seq_length = 0
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.encode("x")


def test_describe_and_repr(model):
    assert "output dim:      384" in model.describe()
    assert "dim=384" in repr(model) and model.device == "cpu"


# ---- errors -----------------------------------------------------------------

def test_missing_model_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        embedc.Model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        embedc.Model("no-such-org/no-such-model")


def test_broken_model_file_is_os_error(tmp_path):
    d = tmp_path / "broken"
    d.mkdir()
    for f in os.listdir(MODEL):
        src = os.path.join(MODEL, f)
        if f != "config.json":
            os.symlink(src, d / f)
    (d / "config.json").write_text("{ not json")
    with pytest.raises(OSError, match="config.json"):
        embedc.Model(str(d))
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    cfg["hidden_size"] = 100
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises((OSError, ValueError)):
        embedc.Model(str(d))


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"device": "tpu"}, ValueError, "device='tpu'"),
    ({"dtype": "int4"}, ValueError, "dtype='int4'"),
    ({"threads": 0}, ValueError, "threads=0"),
    ({"threads": "4"}, TypeError, "threads"),
    ({"max_seq_length": -1}, ValueError, "max_seq_length=-1"),
    ({"max_seq_length": 100000}, ValueError, "max_seq_length 100000"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        embedc.Model(MODEL, **kwargs)


def test_path_of_wrong_type():
    with pytest.raises(TypeError, match="path_or_repo_id"):
        embedc.Model(42)  # type: ignore[arg-type]


def test_cuda_without_cuda_backend_is_runtime_error(model):
    try:
        m = embedc.Model(MODEL, device="cuda")
    except RuntimeError as e:
        assert "cuda" in str(e).lower()
    else:  # a CUDA build on a machine with a GPU
        assert m.device == "cuda"


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((123,), {}, TypeError, "sentences"),
    (([1, "a"],), {}, TypeError, r"sentences\[0\]"),
    ((["a", None],), {}, TypeError, r"sentences\[1\]"),
    ((b"bytes",), {}, TypeError, "bytes"),
    ((["\ud800"],), {}, ValueError, "Unicode"),
    ((TEXTS,), {"prompt_name": "nope"}, ValueError, "nope"),
    ((TEXTS,), {"prompt": 5}, TypeError, "prompt"),
    ((TEXTS,), {"precision": "int4"}, ValueError, "precision='int4'"),
    ((TEXTS,), {"output_value": "logits"}, ValueError, "output_value='logits'"),
    ((TEXTS,), {"truncate_dim": 0}, ValueError, "truncate_dim=0"),
    ((TEXTS,), {"truncate_dim": 385}, ValueError, "truncate_dim=385"),
    ((TEXTS,), {"batch_size": 0}, ValueError, "batch_size=0"),
    ((TEXTS,), {"batch_tokens": -5}, ValueError, "batch_tokens=-5"),
    ((TEXTS,), {"normalize_embeddings": "yes"}, TypeError, "normalize_embeddings"),
    (("one text",), {"precision": "int8"}, ValueError, "single embedding"),
])
def test_bad_encode_input(model, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        model.encode(*args, **kwargs)


def test_bad_similarity_input(model):
    v = model.encode(TEXTS)
    with pytest.raises(ValueError, match="dimensions differ"):
        model.similarity(v, v[:, :10])
    with pytest.raises(ValueError, match="shape"):
        model.similarity(v[None], v)
    with pytest.raises(ValueError, match="similarity_fn_name='cosh'"):
        model.similarity_fn_name = "cosh"


@pytest.mark.parametrize("kwargs, match", [
    ({"modules": []}, "modules"),
    ({"backend": "onnx"}, "backend='onnx'"),
    ({"model_kwargs": {"attn_implementation": "sdpa"}}, "attn_implementation"),
    ({"config_kwargs": {"x": 1}}, "config_kwargs"),
    ({"revision": "abc"}, "revision='abc'"),
    ({"default_prompt_name": "nope"}, "default_prompt_name='nope'"),
])
def test_sentence_transformer_unsupported_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        embedc.SentenceTransformer(MODEL, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"output_value": None}, "output_value=None"),
    ({"pool": {}}, "pool"),
    ({"device": "cuda:1"}, "device='cuda:1'"),
    ({"foo": 1}, "foo"),
    ({"task": "rerank"}, "task='rerank'"),
])
def test_sentence_transformer_unsupported_encode_args(kwargs, match):
    st = embedc.SentenceTransformer(MODEL, device="cpu")
    with pytest.raises(ValueError, match=match):
        st.encode(TEXTS, **kwargs)


def test_sentence_transformer_hub_cache(tmp_path):
    """cache_folder + repo id, as sentence-transformers finds a downloaded model."""
    snap = tmp_path / "models--org--mini" / "snapshots" / "0123abcd"
    snap.parent.mkdir(parents=True)
    os.symlink(os.path.realpath(MODEL), snap)
    (tmp_path / "models--org--mini" / "refs").mkdir()
    (tmp_path / "models--org--mini" / "refs" / "main").write_text("0123abcd")
    st = embedc.SentenceTransformer("org/mini", cache_folder=str(tmp_path), device="cpu")
    assert st.encode("x").shape == (384,)
    with pytest.raises(FileNotFoundError, match="org/other"):
        embedc.SentenceTransformer("org/other", cache_folder=str(tmp_path))
