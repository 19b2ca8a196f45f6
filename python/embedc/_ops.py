"""numpy versions of sentence-transformers' post-processing: quantization and similarity.

Written to give the same numbers as sentence_transformers.quantize_embeddings
and sentence_transformers.util's cos_sim / dot_score / euclidean_sim /
manhattan_sim (checked against golden files made with them).
"""

from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
SIMILARITY_FNS = ("cosine", "dot", "euclidean", "manhattan")

ArrayOrList = Union[np.ndarray, List[np.ndarray]]


def _int8_ranges(calibration: np.ndarray, precision: str) -> np.ndarray:
    if calibration.ndim == 1 or calibration.shape[0] == 1:
        raise ValueError(
            f"precision={precision!r}: cannot compute {precision} quantization ranges from a single "
            "embedding (encode a list of texts, or quantize with ranges from a representative set)"
        )
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0)))


def quantize_embeddings(embeddings: ArrayOrList, precision: str, ranges: np.ndarray | None = None) -> ArrayOrList:
    """Quantizes float embeddings like sentence_transformers.quantize_embeddings.

    int8/uint8: per-dimension buckets between the minimum and maximum of the
    embeddings themselves (or ``ranges``, shape [2, dim]); binary/ubinary: one
    bit per dimension (value > 0), packed 8 per byte, binary offset by -128 into int8.
    A list of 2-D arrays (token embeddings) is quantized with ranges shared by all.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: must be one of {PRECISIONS}")
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        if precision.endswith("int8") and ranges is None:
            ranges = _int8_ranges(np.concatenate(embeddings, axis=0), precision)
        return [quantize_embeddings(e, precision, ranges) for e in embeddings]
    emb = np.asarray(embeddings)
    if emb.dtype in (np.int8, np.uint8):
        raise ValueError("quantize_embeddings: the embeddings are already int8/uint8")
    if precision == "float32":
        return emb.astype(np.float32)
    if emb.ndim == 2 and emb.shape[0] == 0:
        width = emb.shape[1] if precision.endswith("int8") else (emb.shape[1] + 7) // 8
        return np.zeros((0, width), dtype=np.int8 if precision in ("int8", "binary") else np.uint8)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = _int8_ranges(emb, precision)
        ranges = np.asarray(ranges).astype(np.float32, copy=False)
        low = ranges[0, :]
        step = (ranges[1, :] - low) / 255
        step = np.where(step == 0, 1, step)
        buckets = np.clip(np.floor((emb - low) / step), 0, 255)
        if precision == "uint8":
            return buckets.astype(np.uint8)
        return (buckets - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    if precision == "ubinary":
        return bits
    return (bits - 128).astype(np.int8)


def _as_batch(x: object, name: str) -> np.ndarray:
    if isinstance(x, list) and x and isinstance(x[0], np.ndarray):
        x = np.stack(x)
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a [n, dim] or [dim] array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _l2_normalize(a: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))
    return (a / np.maximum(norm, 1e-12)[:, None]).astype(np.float32)


def similarity(a: object, b: object, fn: str = "cosine") -> np.ndarray:
    """[len(a), len(b)] float32 similarity matrix, as sentence-transformers defines ``fn``:
    cosine, dot, euclidean (negative L2 distance) or manhattan (negative L1 distance)."""
    x, y = _as_batch(a, "embeddings1"), _as_batch(b, "embeddings2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"similarity: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    if fn == "cosine":
        return _l2_normalize(x) @ _l2_normalize(y).T
    if fn == "dot":
        return x @ y.T
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if fn == "euclidean":
        d2 = (x64 * x64).sum(1)[:, None] - 2 * x64 @ y64.T + (y64 * y64).sum(1)[None, :]
        return (-np.sqrt(np.maximum(d2, 0))).astype(np.float32)
    if fn == "manhattan":
        return (-np.abs(x64[:, None, :] - y64[None, :, :]).sum(-1)).astype(np.float32)
    raise ValueError(f"similarity_fn_name={fn!r}: must be one of {SIMILARITY_FNS}")


def similarity_pairwise(a: object, b: object, fn: str = "cosine") -> np.ndarray:
    """[n] float32 similarities of a[i] with b[i] (same functions as :func:`similarity`)."""
    x, y = _as_batch(a, "embeddings1"), _as_batch(b, "embeddings2")
    if x.shape != y.shape:
        raise ValueError(f"similarity_pairwise: shapes differ ({x.shape} vs {y.shape})")
    if fn == "cosine":
        return (_l2_normalize(x) * _l2_normalize(y)).sum(1)
    if fn == "dot":
        return (x * y).sum(1)
    d = x.astype(np.float64) - y.astype(np.float64)
    if fn == "euclidean":
        return (-np.sqrt((d * d).sum(1))).astype(np.float32)
    if fn == "manhattan":
        return (-np.abs(d).sum(1)).astype(np.float32)
    raise ValueError(f"similarity_fn_name={fn!r}: must be one of {SIMILARITY_FNS}")


__all__: Sequence[str] = ["quantize_embeddings", "similarity", "similarity_pairwise", "PRECISIONS", "SIMILARITY_FNS"]
