"""embedc.Model: sentence-transformers' encode() over the embedc C library."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._lib import EmbError, EncodeOptions, EncodeStats, ModelInfo, ModelOptions, lib, raise_for
from ._ops import PRECISIONS, SIMILARITY_FNS, quantize_embeddings, similarity, similarity_pairwise

Sentences = Union[str, Sequence[str], np.ndarray]
OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")

_PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)


def _positive_int(value: Any, name: str, allow_none: bool = True) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name}={value}: must be a positive integer")
    return int(value)


def _texts(sentences: Any) -> tuple[list[str], bool]:
    """(list of texts, input was one string)."""
    if isinstance(sentences, str):
        return [sentences], True
    if isinstance(sentences, (bytes, bytearray)):
        raise TypeError("sentences: expected str or a list of str, got bytes (decode it first)")
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    elif not isinstance(sentences, list):
        try:
            sentences = list(sentences)
        except TypeError:
            raise TypeError(
                f"sentences: expected str or a list of str, got {type(sentences).__name__}"
            ) from None
    for i, t in enumerate(sentences):
        if not isinstance(t, str):
            raise TypeError(f"sentences[{i}]: expected str, got {type(t).__name__}")
    return sentences, False


class _Packed:
    """The texts as one UTF-8 buffer plus pointer and length arrays for the C API."""

    def __init__(self, texts: list[str]):
        try:
            parts = [t.encode("utf-8") for t in texts]
        except UnicodeEncodeError as e:
            raise ValueError(f"sentences: a text is not valid Unicode ({e})") from None
        self.blob = np.frombuffer(b"".join(parts) + b"\0", dtype=np.uint8)
        self.lens = np.fromiter(map(len, parts), dtype=np.uintp, count=len(parts))
        self.ptrs = np.empty(len(parts), dtype=np.uintp)
        if len(parts):
            self.ptrs[0] = 0
            np.cumsum(self.lens[:-1], out=self.ptrs[1:])
        self.ptrs += self.blob.ctypes.data

    @property
    def texts_arg(self) -> int:
        return self.ptrs.ctypes.data

    @property
    def lens_arg(self) -> int:
        return self.lens.ctypes.data


class _Progress:
    """A one-line progress bar on stderr (tqdm when it is installed)."""

    def __init__(self, total: int):
        self.total = total
        try:
            from tqdm.auto import tqdm  # type: ignore

            self.bar: Any = tqdm(total=total, desc="Batches", unit="doc")
        except ImportError:
            self.bar = None
        self.done = 0

    def update(self, docs: int) -> None:
        if self.bar is not None:
            self.bar.update(docs - self.done)
        else:
            sys.stderr.write(f"\rembedc: {docs}/{self.total} documents")
            sys.stderr.flush()
        self.done = docs

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.total:
            sys.stderr.write("\n")


class Model:
    """An embedding model loaded by embedc, with sentence-transformers' ``encode`` API.

    Args:
        path_or_repo_id: a model directory laid out like the Hugging Face hub, or an
            ``org/name`` repo id already in the Hugging Face cache (embedc never downloads).
        device: ``"auto"`` (CUDA when usable, else CPU), ``"cpu"``, ``"cuda"`` / ``"cuda:0"``.
        dtype: GPU precision: ``"auto"``, ``"float16"``, ``"bfloat16"`` (``"float32"``: the CPU).
        threads: CPU threads (None: all cores).
        max_seq_length: truncation length in tokens (None: the model's own).

    Several threads may call ``encode`` on one model: calls are serialized inside
    the library (each already uses every core it was given) and the GIL is released
    while the engine runs. Errors carry embedc's message: ValueError for bad arguments
    and input, FileNotFoundError/OSError for model files, RuntimeError for the device.
    """

    def __init__(
        self,
        path_or_repo_id: Union[str, os.PathLike],
        device: str = "auto",
        dtype: str = "auto",
        threads: Optional[int] = None,
        max_seq_length: Optional[int] = None,
    ) -> None:
        self._ptr: Optional[int] = None
        if not isinstance(path_or_repo_id, (str, os.PathLike)):
            raise TypeError(f"path_or_repo_id: expected str or path, got {type(path_or_repo_id).__name__}")
        path = os.fspath(path_or_repo_id)
        opts = lib.emb_model_default_options()
        dev = "cuda" if device in ("cuda:0",) else device
        if dev not in _lib.DEVICES:
            raise ValueError(f"device={device!r}: must be 'auto', 'cpu', 'cuda' or 'cuda:0'")
        if dtype not in _lib.DTYPES:
            raise ValueError(f"dtype={dtype!r}: must be one of {sorted(_lib.DTYPES)}")
        opts.device = _lib.DEVICES[dev]
        opts.dtype = _lib.DTYPES[dtype]
        opts.threads = _positive_int(threads, "threads") or 0
        max_seq_length = _positive_int(max_seq_length, "max_seq_length")
        err = EmbError()
        handle = ctypes.c_void_p()
        st = lib.emb_model_load(path.encode(), ctypes.byref(opts), ctypes.byref(handle), ctypes.byref(err))
        if st == _lib.ERR_UNSUPPORTED and dev == "cuda":
            raise RuntimeError(err.message.decode("utf-8", "replace"))
        raise_for(st, err, "load")
        self._ptr = handle.value
        self._similarity_fn_name: Optional[str] = None
        self._prompts: Optional[Dict[str, str]] = None
        self._default_prompt_name: Optional[str] = None
        self._prompts_overridden = False
        self.truncate_dim: Optional[int] = None
        if max_seq_length is not None:
            self.max_seq_length = max_seq_length

    # ---- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Frees the model now (it is also freed when garbage-collected)."""
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            lib.emb_model_free(ptr)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _handle(self) -> int:
        if not self._ptr:
            raise ValueError("the model was closed")
        return self._ptr

    def _info(self) -> ModelInfo:
        info = ModelInfo()
        err = EmbError()
        raise_for(lib.emb_model_get_info(self._handle(), ctypes.byref(info), ctypes.byref(err)), err, "info")
        return info

    def __repr__(self) -> str:
        info = self._info()
        return (f"embedc.Model({info.dir.decode()!r}, device={info.backend.decode()!r}, dim={info.dim}, "
                f"max_seq_length={info.max_seq_length})")

    # ---- model facts ---------------------------------------------------------

    @property
    def device(self) -> str:
        """The backend that runs the model: ``"cpu"`` or ``"cuda"``."""
        return self._info().backend.decode()

    @property
    def path(self) -> str:
        """The resolved model directory."""
        return self._info().dir.decode()

    @property
    def max_seq_length(self) -> int:
        """Tokens per text (specials included) beyond which texts are truncated; settable."""
        return self._info().max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        value = _positive_int(value, "max_seq_length", allow_none=False)  # type: ignore[assignment]
        err = EmbError()
        raise_for(lib.emb_model_set_max_length(self._handle(), value, ctypes.byref(err)), err, "set")

    @property
    def prompts(self) -> Dict[str, str]:
        """The model's prompts (config_sentence_transformers.json), name -> text."""
        if self._prompts is None:
            out: Dict[str, str] = {}
            name, text = ctypes.c_char_p(), ctypes.c_char_p()
            err = EmbError()
            for i in range(self._info().n_prompts):
                raise_for(lib.emb_model_prompt(self._handle(), i, ctypes.byref(name), ctypes.byref(text),
                                               ctypes.byref(err)), err, "info")
                out[(name.value or b"").decode()] = (text.value or b"").decode()
            self._prompts = out
        return self._prompts

    @property
    def default_prompt_name(self) -> Optional[str]:
        """The prompt applied when encode() gets neither prompt nor prompt_name."""
        if self._prompts_overridden:
            return self._default_prompt_name
        name = self._info().default_prompt_name
        return name.decode() if name else None

    @property
    def similarity_fn_name(self) -> str:
        """``"cosine"``, ``"dot"``, ``"euclidean"`` or ``"manhattan"``: the model's (settable)."""
        if self._similarity_fn_name is None:
            return self._info().similarity_fn.decode()
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: Optional[str]) -> None:
        if value is not None:
            value = getattr(value, "value", value)  # sentence-transformers' SimilarityFunction enum
            if value not in SIMILARITY_FNS:
                raise ValueError(f"similarity_fn_name={value!r}: must be one of {SIMILARITY_FNS}")
        self._similarity_fn_name = value

    def get_sentence_embedding_dimension(self) -> int:
        """Width of encode()'s vectors (after Dense modules and the model's truncate_dim)."""
        dim = self._info().dim
        return min(dim, self.truncate_dim) if self.truncate_dim else dim

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    def describe(self) -> str:
        """What was loaded, in a few human-readable lines."""
        ptr = lib.emb_model_describe(self._handle())
        if not ptr:
            raise MemoryError("emb_model_describe: out of memory")
        try:
            return ctypes.string_at(ptr).decode("utf-8", "replace")
        finally:
            _lib.free(ptr)

    # ---- tokenization -------------------------------------------------------------

    def tokenize(self, texts: Sentences) -> Dict[str, np.ndarray]:
        """Tokenizes like sentence-transformers' ``model.tokenize``: no prompt, truncated to
        max_seq_length, padded to the longest text. Returns int64 arrays ``input_ids``,
        ``token_type_ids`` and ``attention_mask`` of shape [n, longest]."""
        items, _ = _texts(texts)
        opts = lib.emb_encode_default_options()
        opts.prompt = b""
        cap = self.max_seq_length
        ids = np.zeros((len(items), cap), dtype=np.int32)
        types = np.zeros((len(items), cap), dtype=np.int32)
        lens = np.zeros(len(items), dtype=np.int64)
        n = ctypes.c_size_t()
        err = EmbError()
        h = self._handle()
        I32 = ctypes.POINTER(ctypes.c_int32)
        for i, t in enumerate(items):
            b = t.encode("utf-8")
            st = lib.emb_tokenize(h, b, len(b), ctypes.byref(opts), ids[i].ctypes.data_as(I32),
                                  types[i].ctypes.data_as(I32), cap, ctypes.byref(n), ctypes.byref(err))
            raise_for(st, err, "encode")
            lens[i] = min(n.value, cap)
        width = int(lens.max()) if len(items) else 0
        mask = (np.arange(width)[None, :] < lens[:, None]).astype(np.int64)
        return {
            "input_ids": ids[:, :width].astype(np.int64),
            "token_type_ids": types[:, :width].astype(np.int64),
            "attention_mask": mask,
        }

    # ---- encoding ------------------------------------------------------------------

    def _resolve_prompt(self, prompt: Optional[str], prompt_name: Optional[str]) -> tuple[Optional[str], Optional[str]]:
        """(literal prompt, prompt name) to hand to the C library."""
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
        if prompt_name is not None and not isinstance(prompt_name, str):
            raise TypeError(f"prompt_name: expected str, got {type(prompt_name).__name__}")
        if prompt is not None:
            return prompt, None
        if not self._prompts_overridden:
            return None, prompt_name  # the library resolves names and the default prompt
        if prompt_name is None:
            prompt_name = self._default_prompt_name
            if prompt_name is None:
                return "", None
        if prompt_name not in self.prompts:
            raise ValueError(f"prompt_name={prompt_name!r} is not one of the model's prompts {list(self.prompts)}")
        return self.prompts[prompt_name], None

    def encode(
        self,
        sentences: Sentences,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: Optional[int] = None,
        batch_tokens: Optional[int] = None,
        show_progress_bar: Optional[bool] = None,
        output_value: str = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        normalize_embeddings: Optional[bool] = None,
        truncate_dim: Optional[int] = None,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Embeds text like sentence-transformers' ``encode``.

        Args:
            sentences: one string (gives a 1-D array) or a list of strings (a 2-D array).
            prompt_name: a prompt of the model (``prompts``) to prepend; the model's
                default prompt applies when neither prompt nor prompt_name is given.
            prompt: a literal prompt to prepend (wins over prompt_name).
            batch_size: accepted for compatibility (must be positive); embedc batches by tokens.
            batch_tokens: token budget of one packed batch (None: the model's default).
            show_progress_bar: a progress bar on stderr.
            output_value: ``"sentence_embedding"`` or ``"token_embeddings"`` (one
                [tokens, hidden] array per text, specials and prompt included).
            precision: ``"float32"``, ``"int8"``, ``"uint8"``, ``"binary"`` or ``"ubinary"``,
                as sentence_transformers.quantize_embeddings (ranges from this call's vectors).
            convert_to_numpy: True: one array; False: a list of 1-D arrays.
            normalize_embeddings: L2-normalize the vectors (after truncate_dim). None/False
                keep the model's own pipeline (its Normalize module, if any).
            truncate_dim: keep the first N dimensions (Matryoshka).
        """
        items, single = _texts(sentences)
        _positive_int(batch_size, "batch_size")
        batch_tokens = _positive_int(batch_tokens, "batch_tokens")
        if output_value not in OUTPUT_VALUES:
            raise ValueError(f"output_value={output_value!r}: embedc gives {OUTPUT_VALUES}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: must be one of {PRECISIONS}")
        if normalize_embeddings is not None and not isinstance(normalize_embeddings, (bool, np.bool_)):
            raise TypeError(f"normalize_embeddings: expected bool, got {type(normalize_embeddings).__name__}")
        truncate_dim = _positive_int(truncate_dim, "truncate_dim")
        if truncate_dim is None:
            truncate_dim = self.truncate_dim
        lit, name = self._resolve_prompt(prompt, prompt_name)
        opts = EncodeOptions()
        opts.normalize = -1
        opts.prompt = None if lit is None else lit.encode("utf-8")
        opts.prompt_name = None if name is None else name.encode("utf-8")
        info = self._info()
        if output_value == "token_embeddings":
            embs: Any = self._token_embeddings(items, opts, info)
            if precision != "float32" and embs:
                embs = quantize_embeddings(embs, precision)
            return embs[0] if single else embs
        if truncate_dim is not None and truncate_dim > info.dim:
            raise ValueError(f"truncate_dim={truncate_dim}: the model gives {info.dim} dimensions")
        # sentence-transformers truncates the model's output, then normalizes only when
        # asked: a model's own Normalize does not renormalize the truncated vector.
        slice_here = bool(truncate_dim) and info.normalize and not normalize_embeddings
        if truncate_dim and not slice_here:
            opts.truncate_dim = truncate_dim
        if normalize_embeddings:
            opts.normalize = 1
        out = self._encode(items, opts, batch_tokens, bool(show_progress_bar))
        if slice_here:
            out = np.ascontiguousarray(out[:, :truncate_dim])
        result: Any = out
        if precision != "float32" and len(items):
            result = quantize_embeddings(out, precision)
        if not convert_to_numpy:
            result = list(result)
        return result[0] if single else result

    def _encode(self, items: list[str], opts: EncodeOptions, batch_tokens: Optional[int],
                progress: bool) -> np.ndarray:
        h = self._handle()
        dim = lib.emb_model_dim(h, ctypes.byref(opts))
        if dim <= 0:
            raise ValueError(f"truncate_dim={opts.truncate_dim}: not valid for this model")
        out = np.empty((len(items), dim), dtype=np.float32)
        if not items:
            return out
        packed = _Packed(items)
        run = _RunOptions()
        run.batch_tokens = batch_tokens or 0
        bar = _Progress(len(items)) if progress else None
        cb = _PROGRESS_FN(lambda ud, docs, tokens: bar.update(docs)) if bar else _PROGRESS_FN()
        run.progress = cb
        err = EmbError()
        stats = EncodeStats()
        try:
            st = lib.emb_encode_with(h, packed.texts_arg, packed.lens_arg, len(items), ctypes.byref(opts),
                                     ctypes.byref(run), out.ctypes.data, ctypes.byref(stats), ctypes.byref(err))
        finally:
            if bar:
                bar.close()
        raise_for(st, err, "encode")
        return out

    def _token_embeddings(self, items: list[str], opts: EncodeOptions, info: ModelInfo) -> List[np.ndarray]:
        if not items:
            return []
        h = self._handle()
        packed = _Packed(items)
        counts = np.zeros(len(items), dtype=np.int32)
        err = EmbError()
        args = (h, packed.texts_arg, packed.lens_arg, len(items), ctypes.byref(opts))
        raise_for(lib.emb_token_embeddings(*args, None, 0, counts.ctypes.data, ctypes.byref(err)), err, "encode")
        total = int(counts.sum())
        flat = np.empty((total, info.hidden), dtype=np.float32)
        raise_for(lib.emb_token_embeddings(*args, flat.ctypes.data, total, counts.ctypes.data, ctypes.byref(err)),
                  err, "encode")
        return np.split(flat, np.cumsum(counts)[:-1])

    def encode_query(self, sentences: Sentences, prompt_name: Optional[str] = None, prompt: Optional[str] = None,
                     **kwargs: Any) -> Union[np.ndarray, List[np.ndarray]]:
        """encode() with the model's ``"query"`` prompt when it has one (sentence-transformers 5)."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_document(self, sentences: Sentences, prompt_name: Optional[str] = None,
                        prompt: Optional[str] = None, **kwargs: Any) -> Union[np.ndarray, List[np.ndarray]]:
        """encode() with the model's ``"document"``, ``"passage"`` or ``"corpus"`` prompt
        (the first it has), like sentence-transformers 5."""
        if prompt_name is None and prompt is None:
            for candidate in ("document", "passage", "corpus"):
                if candidate in self.prompts:
                    prompt_name = candidate
                    break
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    # ---- similarity -----------------------------------------------------------------

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """[n1, n2] float32 matrix of the model's similarity function (similarity_fn_name)."""
        return similarity(embeddings1, embeddings2, self.similarity_fn_name)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """[n] float32: the model's similarity of embeddings1[i] with embeddings2[i]."""
        return similarity_pairwise(embeddings1, embeddings2, self.similarity_fn_name)


class _RunOptions(ctypes.Structure):
    _fields_ = [("batch_tokens", ctypes.c_size_t), ("progress", _PROGRESS_FN), ("progress_ud", ctypes.c_void_p)]


lib.emb_encode_with.restype = ctypes.c_int
lib.emb_encode_with.argtypes = [
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(EncodeOptions),
    ctypes.POINTER(_RunOptions), ctypes.c_void_p, ctypes.POINTER(EncodeStats), ctypes.POINTER(EmbError),
]
