"""Fixtures for the embedc Python package's tests: the model (all-MiniLM-L6-v2, fetched by
tools/fetch-model), its variants (variants.py) and the golden outputs made by
tools/make-golden-python with sentence-transformers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import embedc
from variants import make_variant

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, "golden")
MODEL = os.environ.get("EMBEDC_MODEL", os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))


def pytest_configure(config):
    if not os.path.isfile(os.path.join(MODEL, "config.json")):
        raise pytest.UsageError(f"no model at {MODEL}: run tools/fetch-model (or set EMBEDC_MODEL)")


@pytest.fixture(scope="session")
def manifest():
    with open(os.path.join(GOLDEN, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def golden(name: str) -> np.ndarray:
    return np.load(os.path.join(GOLDEN, name))


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    dirs = {None: MODEL}
    from variants import VARIANTS

    for name in VARIANTS:
        dirs[name] = make_variant(MODEL, str(base / name), name)
    return dirs


@pytest.fixture(scope="session")
def models(model_dirs):
    """One embedc.Model per variant, loaded once."""
    loaded = {k: embedc.Model(v, device="cpu") for k, v in model_dirs.items()}
    yield loaded
    for m in loaded.values():
        m.close()


@pytest.fixture(scope="session")
def model(models):
    return models[None]
