"""embedc.SentenceTransformer: sentence-transformers' constructor and encode() signature.

Arguments embedc honours are mapped onto embedc.Model; arguments that would change
what is computed in a way embedc cannot reproduce raise ValueError (or TypeError)
naming the argument, instead of being silently ignored.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .model import Model, Sentences

_DTYPE_NAMES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "auto": "auto",
                "torch.float32": "float32", "torch.float16": "float16", "torch.bfloat16": "bfloat16"}


def _from_cache(repo_id: str, cache_folder: str, revision: Optional[str]) -> str:
    """The snapshot directory of repo_id in a Hugging Face hub cache folder."""
    base = os.path.join(cache_folder, "models--" + repo_id.replace("/", "--"))
    snaps = os.path.join(base, "snapshots")
    if not os.path.isdir(snaps):
        raise FileNotFoundError(f"model {repo_id!r}: not in cache_folder {cache_folder!r} (embedc never downloads)")
    rev = revision or "main"
    ref = os.path.join(base, "refs", rev)
    if os.path.isfile(ref):
        with open(ref) as f:
            rev = f.read().strip()
    if os.path.isdir(os.path.join(snaps, rev)):
        return os.path.join(snaps, rev)
    if revision is not None:
        raise ValueError(f"revision={revision!r}: no such snapshot of {repo_id!r} in {cache_folder!r}")
    found = sorted(os.listdir(snaps))
    if not found:
        raise FileNotFoundError(f"model {repo_id!r}: no snapshot in {snaps!r}")
    return os.path.join(snaps, found[-1])


class SentenceTransformer(Model):
    """Drop-in for ``sentence_transformers.SentenceTransformer`` (inference only).

    Honoured: model_name_or_path, device ("cpu", "cuda", "cuda:0", None = auto), prompts,
    default_prompt_name, cache_folder, revision (a snapshot already in the cache),
    similarity_fn_name, truncate_dim, model_kwargs={"torch_dtype"/"dtype": ...}.
    Accepted and without effect (embedc never downloads nor runs remote code):
    trust_remote_code, local_files_only, token, use_auth_token, model_card_data,
    backend="torch". Anything else raises ValueError naming the argument.
    """

    def __init__(
        self,
        model_name_or_path: Optional[str] = None,
        *,
        modules: Optional[list] = None,
        device: Optional[str] = None,
        prompts: Optional[Dict[str, str]] = None,
        default_prompt_name: Optional[str] = None,
        cache_folder: Optional[str] = None,
        trust_remote_code: bool = False,
        revision: Optional[str] = None,
        local_files_only: bool = False,
        token: Union[bool, str, None] = None,
        use_auth_token: Union[bool, str, None] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
        processor_kwargs: Optional[Dict[str, Any]] = None,
        config_kwargs: Optional[Dict[str, Any]] = None,
        model_card_data: Any = None,
        backend: str = "torch",
        similarity_fn_name: Optional[str] = None,
        truncate_dim: Optional[int] = None,
        threads: Optional[int] = None,
    ) -> None:
        self._ptr = None
        if model_name_or_path is None:
            raise ValueError("model_name_or_path: embedc needs a model (building one from `modules` is not supported)")
        if modules is not None:
            raise ValueError("modules: embedc loads models from files; custom module lists are not supported")
        if backend not in ("torch",):
            raise ValueError(f"backend={backend!r}: embedc is its own backend; pass 'torch' (the default) or omit it")
        for name, value in (("processor_kwargs", processor_kwargs), ("config_kwargs", config_kwargs)):
            if value:
                raise ValueError(f"{name}={value!r}: not supported by embedc")
        dtype = "auto"
        for key, value in (model_kwargs or {}).items():
            if key in ("torch_dtype", "dtype") and str(value) in _DTYPE_NAMES:
                dtype = _DTYPE_NAMES[str(value)]
            else:
                raise ValueError(f"model_kwargs[{key!r}]={value!r}: embedc supports only torch_dtype/dtype "
                                 f"({', '.join(sorted(set(_DTYPE_NAMES.values())))})")
        path = os.fspath(model_name_or_path)
        if cache_folder is not None and not os.path.isdir(path):
            path = _from_cache(path, cache_folder, revision)
        elif revision is not None:
            raise ValueError(f"revision={revision!r}: embedc needs cache_folder to pick a snapshot")
        super().__init__(path, device=device or "auto", dtype=dtype, threads=threads)
        if prompts is not None:
            if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in prompts.items()):
                raise TypeError("prompts: expected a dict of str -> str")
            # like sentence-transformers: given prompts replace the model's
            model_default = self.default_prompt_name
            self._prompts = dict(prompts)
            self._default_prompt_name = model_default if model_default in prompts else None
            self._prompts_overridden = True
        if default_prompt_name is not None:
            if default_prompt_name not in self.prompts:
                raise ValueError(f"default_prompt_name={default_prompt_name!r}: not one of the prompts "
                                 f"{list(self.prompts)}")
            if not self._prompts_overridden:
                self._prompts = dict(self.prompts)
                self._prompts_overridden = True
            self._default_prompt_name = default_prompt_name
        if similarity_fn_name is not None:
            self.similarity_fn_name = similarity_fn_name
        if truncate_dim is not None:
            if not isinstance(truncate_dim, int) or truncate_dim <= 0:
                raise ValueError(f"truncate_dim={truncate_dim!r}: must be a positive integer")
            self.truncate_dim = truncate_dim

    def encode(  # type: ignore[override]
        self,
        sentences: Sentences = None,  # type: ignore[assignment]
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        output_value: Optional[str] = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: Any = None,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        pool: Any = None,
        chunk_size: Optional[int] = None,
        batch_tokens: Optional[int] = None,
        inputs: Sentences = None,  # type: ignore[assignment]
        **kwargs: Any,
    ) -> Union[np.ndarray, List[np.ndarray], Any]:
        """sentence-transformers' encode(); see embedc.Model.encode for what each argument does.

        convert_to_tensor=True returns a torch tensor (needs torch). device must be None or the
        model's device; pool/chunk_size (multi-process) and extra keyword arguments other than
        task="query"/"document" are not supported (ValueError)."""
        if sentences is None:
            sentences = inputs
        elif inputs is not None:
            raise TypeError("encode: pass the texts once (sentences or inputs)")
        if sentences is None:
            raise TypeError("encode: missing the texts to embed")
        if output_value is None:
            raise ValueError("output_value=None (all features as dicts): not supported by embedc; "
                             "use 'sentence_embedding' or 'token_embeddings'")
        if device is not None and str(device) not in (self.device, f"{self.device}:0"):
            raise ValueError(f"device={device!r}: this model runs on {self.device!r}; choose the device when loading")
        if pool is not None or chunk_size is not None:
            raise ValueError("pool/chunk_size: multi-process encoding is not supported by embedc "
                             "(one process already uses every core, or the GPU)")
        task = kwargs.pop("task", None)
        if kwargs:
            raise ValueError(f"encode() got keyword arguments embedc does not support: {sorted(kwargs)}")
        if task not in (None, "query", "document"):
            raise ValueError(f"task={task!r}: embedc models have no Router; use 'query', 'document' or None")
        out = super().encode(
            sentences, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size, batch_tokens=batch_tokens,
            show_progress_bar=show_progress_bar, output_value=output_value, precision=precision,
            convert_to_numpy=convert_to_numpy and not convert_to_tensor,
            normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim)
        if convert_to_tensor and output_value == "sentence_embedding":
            try:
                import torch  # type: ignore
            except ImportError:
                raise ValueError("convert_to_tensor=True needs torch installed; "
                                 "use convert_to_numpy=True (the default)") from None
            return torch.from_numpy(np.asarray(out))
        return out
