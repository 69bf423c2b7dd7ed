"""The two encoders, each loaded once per process by the app: a dense sentence-transformers
model and a BM25 sparse encoder matching Qdrant's own (Qdrant applies the IDF part)."""

from __future__ import annotations

import numpy as np

from rag.errors import MissingModel
from rag.tokens import resolve_embedding_model

# Used only where no passage has been measured yet (an index with no passages).
DEFAULT_BM25_AVG_LEN = 40.0


class DenseEncoder:
    def __init__(self, model: str, batch_size: int = 64):
        # The hub libraries are kept offline by rag/__init__.py, before any can be imported.
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars would break one-line stderr

        path = resolve_embedding_model(model)
        try:
            self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise MissingModel(
                f"cannot load the embedding model from {path}: {exc}", "reinstall its package"
            ) from None
        self.name = model
        self.batch_size = batch_size
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


class SparseEncoder:
    """BM25 term weights for documents, bare term ids for queries. Document frequency (IDF)
    is left to Qdrant's `Modifier.IDF`, so adding documents never re-weights old ones.

    Length normalisation needs the corpus's typical passage length. It is measured from the
    passages themselves when an index is built (`average_length`) and kept in the index's
    config, so it follows whatever corpus and chunk size the index holds."""

    def __init__(self, avg_len: float | None = None):
        from qdrant_edge import Bm25, Bm25Config

        self._make = lambda avg: Bm25(Bm25Config(avg_len=float(avg)))
        self._by_len: dict[float, object] = {}
        self.avg_len = avg_len
        # With b = 0 and k = 1 a term's weight is 2·tf / (tf + 1), so tf can be read back:
        # Qdrant's own tokenizer, stop words and stemming decide what a token is.
        self._counter = Bm25(Bm25Config(avg_len=1.0, b=0.0, k=1.0))
        self._query = self._make(1.0)

    def _bm25(self, avg_len: float | None):
        avg = float(avg_len or self.avg_len or DEFAULT_BM25_AVG_LEN)
        if avg not in self._by_len:
            self._by_len[avg] = self._make(avg)
        return self._by_len[avg]

    def length(self, text: str) -> int:
        """How many BM25 tokens the text holds, as Qdrant's tokenizer counts them."""
        vec = self._counter.embed_document(text)
        return round(sum(v / (2.0 - v) for v in vec.values))

    def average_length(self, texts: list[str]) -> float | None:
        if not texts:
            return None
        return max(1.0, round(sum(self.length(t) for t in texts) / len(texts), 1))

    def encode(
        self, texts: list[str], avg_len: float | None = None
    ) -> list[tuple[list[int], list[float]]]:
        bm25 = self._bm25(avg_len)
        out = []
        for text in texts:
            vec = bm25.embed_document(text)
            out.append((list(vec.indices), list(vec.values)))
        return out

    def encode_query(self, text: str) -> tuple[list[int], list[float]]:
        # A query's term ids do not depend on the length normalisation.
        vec = self._query.embed_query(text)
        return list(vec.indices), [float(v) for v in vec.values]
