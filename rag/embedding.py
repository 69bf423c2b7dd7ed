"""The two encoders, each loaded once per process by the app: a dense sentence-transformers
model and a BM25 sparse encoder matching Qdrant's own (Qdrant applies the IDF part)."""

from __future__ import annotations

import numpy as np

from rag.errors import MissingModel
from rag.tokens import resolve_embedding_model


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
    is left to Qdrant's `Modifier.IDF`, so adding documents never re-weights old ones."""

    def __init__(self, avg_len: float = 40.0):
        from qdrant_edge import Bm25, Bm25Config

        self.bm25 = Bm25(Bm25Config(avg_len=float(avg_len)))

    def encode(self, texts: list[str]) -> list[tuple[list[int], list[float]]]:
        out = []
        for text in texts:
            vec = self.bm25.embed_document(text)
            out.append((list(vec.indices), list(vec.values)))
        return out

    def encode_query(self, text: str) -> tuple[list[int], list[float]]:
        vec = self.bm25.embed_query(text)
        return list(vec.indices), [float(v) for v in vec.values]
