"""ctypes declarations of include/embedc.h and the mapping of emb_status to exceptions.

The shared library ships inside the package (libembedc.so next to this file);
$EMBEDC_LIBRARY names another one (a development build, for instance).
ctypes.CDLL releases the GIL for the duration of every call, so other Python
threads run while the engine computes.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_size_t,
    c_uint64,
    c_void_p,
)

# emb_status
OK = 0
ERR_INVALID_ARG = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_UNSUPPORTED = 4
ERR_NOMEM = 5
ERR_DEVICE = 6
ERR_DEVICE_OOM = 7
ERR_INTERNAL = 8

DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
DTYPES = {"auto": 0, "float32": 1, "f32": 1, "float16": 2, "f16": 2, "bfloat16": 3, "bf16": 3}


class EmbError(Structure):
    _fields_ = [("code", c_int), ("message", c_char * 1024)]


class ModelOptions(Structure):
    _fields_ = [
        ("device", c_int),
        ("dtype", c_int),
        ("threads", c_int),
        ("max_length", c_int),
        ("batch_tokens", c_size_t),
        ("verbose", c_int),
        ("devices", c_char_p),
        ("lowercase", c_int),
        ("tensor_parallel", c_int),
    ]


class EncodeOptions(Structure):
    _fields_ = [
        ("prompt", c_char_p),
        ("prompt_name", c_char_p),
        ("normalize", c_int),
        ("truncate_dim", c_int),
        ("pooling", c_int),
        ("layer", c_int),
        ("max_doc_bytes", c_size_t),
        ("long_docs", c_int),
    ]


class EncodeStats(Structure):
    _fields_ = [
        ("documents", c_uint64),
        ("tokens", c_uint64),
        ("truncated", c_uint64),
        ("invalid_utf8", c_uint64),
        ("cut", c_uint64),
        ("empty", c_uint64),
        ("flops", c_double),
        ("devices", c_int),
        ("device_tokens", c_uint64 * 64),
        ("oov", c_uint64),
        ("windows", c_uint64),
        ("read_seconds", c_double),
        ("tokenize_seconds", c_double),
        ("wait_seconds", c_double),
        ("batch_seconds", c_double),
        ("encode_seconds", c_double),
        ("write_seconds", c_double),
    ]


class ModelInfo(Structure):
    _fields_ = [
        ("dim", c_int),
        ("hidden", c_int),
        ("max_seq_length", c_int),
        ("max_positions", c_int),
        ("layers", c_int),
        ("normalize", c_int),
        ("n_prompts", c_int),
        ("similarity_fn", c_char_p),
        ("default_prompt_name", c_char_p),
        ("backend", c_char_p),
        ("dir", c_char_p),
    ]


def _library_path() -> str:
    override = os.environ.get("EMBEDC_LIBRARY")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    name = "libembedc.dylib" if sys.platform == "darwin" else "libembedc.so"
    return os.path.join(here, name)


def _load() -> ctypes.CDLL:
    path = _library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"embedc: cannot load the embedc library {path!r} ({e}); "
            "install the package with `pip install ./python` or set EMBEDC_LIBRARY"
        ) from e
    P = POINTER
    sigs = {
        "emb_model_default_options": (ModelOptions, []),
        "emb_encode_default_options": (EncodeOptions, []),
        "emb_model_load": (c_int, [c_char_p, P(ModelOptions), P(c_void_p), P(EmbError)]),
        "emb_model_free": (None, [c_void_p]),
        "emb_model_dim": (c_int, [c_void_p, P(EncodeOptions)]),
        "emb_encode": (
            c_int,
            [c_void_p, c_void_p, c_void_p, c_size_t, P(EncodeOptions), c_void_p, P(EncodeStats), P(EmbError)],
        ),
        "emb_model_get_info": (c_int, [c_void_p, P(ModelInfo), P(EmbError)]),
        "emb_model_prompt": (c_int, [c_void_p, c_int, P(c_char_p), P(c_char_p), P(EmbError)]),
        "emb_model_set_max_length": (c_int, [c_void_p, c_int, P(EmbError)]),
        "emb_tokenize": (
            c_int,
            [c_void_p, c_char_p, c_size_t, P(EncodeOptions), P(c_int32), P(c_int32), c_size_t, P(c_size_t),
             P(EmbError)],
        ),
        "emb_token_embeddings": (
            c_int,
            [c_void_p, c_void_p, c_void_p, c_size_t, P(EncodeOptions), c_void_p, c_size_t, c_void_p, P(EmbError)],
        ),
        "emb_model_describe": (c_void_p, [c_void_p]),
        "emb_status_name": (c_char_p, [c_int]),
        "emb_struct_size": (c_size_t, [c_char_p]),
    }
    for name, (res, args) in sigs.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as e:
            raise ImportError(f"embedc: {path} lacks {name}(): a library older than this package") from e
        fn.restype = res
        fn.argtypes = args
    # The structs above mirror include/embedc.h by hand: refuse to run with a
    # library whose layout differs, rather than pass it garbage.
    for cname, cls in (("emb_model_options", ModelOptions), ("emb_encode_options", EncodeOptions),
                       ("emb_encode_stats", EncodeStats), ("emb_model_info", ModelInfo),
                       ("emb_error", EmbError)):
        if lib.emb_struct_size(cname.encode()) != ctypes.sizeof(cls):
            raise ImportError(f"embedc: {path} has a different {cname} ({lib.emb_struct_size(cname.encode())} "
                              f"bytes) than this package ({ctypes.sizeof(cls)}): rebuild the package")
    return lib


lib = _load()
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]
_libc.free.restype = None


def free(ptr: int) -> None:
    """Frees memory the C library allocated with malloc (emb_model_describe)."""
    _libc.free(ptr)


def raise_for(status: int, err: EmbError, during: str) -> None:
    """Raises the Python exception for a failed emb_status, carrying embedc's message."""
    if status == OK:
        return
    msg = err.message.decode("utf-8", "replace") or lib.emb_status_name(status).decode()
    if status == ERR_INVALID_ARG:
        raise ValueError(msg)
    if status == ERR_IO:
        if "no such" in msg.lower() or "not found" in msg.lower():
            raise FileNotFoundError(msg)
        raise OSError(msg)
    if status == ERR_FORMAT:
        # A malformed model file while loading; malformed input while encoding.
        raise (OSError if during == "load" else ValueError)(msg)
    if status == ERR_UNSUPPORTED:
        raise ValueError(msg)
    if status == ERR_NOMEM:
        raise MemoryError(msg)
    raise RuntimeError(msg)


__all__ = [
    "lib", "free", "raise_for", "EmbError", "ModelOptions", "EncodeOptions", "EncodeStats", "ModelInfo",
    "DEVICES", "DTYPES", "c_float", "c_int32",
]
