"""embedc: fast text embeddings with sentence-transformers' API, from the embedc C library.

    import embedc
    m = embedc.Model("sentence-transformers/all-MiniLM-L6-v2")   # or a model directory
    v = m.encode(["a cat", "un chat"])                           # float32 [2, 384]
    m.similarity(v, v)

``embedc.SentenceTransformer`` takes sentence-transformers' constructor and encode()
arguments, so switching can be a change of import.
"""

from ._ops import quantize_embeddings, similarity, similarity_pairwise
from .model import Model
from .st import SentenceTransformer

__version__ = "0.1.0"
__all__ = ["Model", "SentenceTransformer", "quantize_embeddings", "similarity", "similarity_pairwise"]
