"""question → ranked passages: dense, keyword (BM25) or hybrid (reciprocal rank fusion done
by Qdrant in one call), with optional metadata filters."""

from __future__ import annotations

import numpy as np

from rag.errors import BadInput
from rag.store import QdrantStore
from rag.types import Hit

MODES = ("hybrid", "dense", "sparse")


class Retriever:
    def __init__(self, store: QdrantStore, dense, sparse):
        self.store = store
        self._dense = dense  # () -> DenseEncoder
        self._sparse = sparse  # () -> SparseEncoder

    def resolve_sources(self, names: list[str] | None) -> list[str] | None:
        """Let users name a guide by file name, stem or path suffix."""
        if not names:
            return None
        known = list(self.store.sources_by_name())
        chosen = []
        for name in names:
            matches = [s for s in known if s == name or s.endswith("/" + name) or s.rsplit("/", 1)[-1].rsplit(".", 1)[0] == name]
            if not matches:
                raise BadInput(f"no indexed document matches {name!r}", "see `rag sources` for the names")
            chosen.extend(matches)
        return chosen

    def search(
        self, query: str, mode: str = "hybrid", top_k: int = 5,
        sources: list[str] | None = None, kinds: list[str] | None = None,
    ) -> list[Hit]:
        if mode not in MODES:
            raise BadInput(f"unknown retrieval mode {mode!r}", "use hybrid, dense or sparse")
        query_vec = self._dense().encode_query(query)
        sparse_vec = self._sparse().encode_query(query) if mode != "dense" else None
        filters = {}
        if sources:
            filters["sources"] = self.resolve_sources(sources)
        if kinds:
            filters["kind"] = kinds
        points = self.store.query(mode, query_vec.tolist(), sparse_vec, top_k, filters)
        hits = []
        for rank, p in enumerate(points, 1):
            pl = p.payload
            span = pl.get("spans", {}).get(pl.get("source"), [0, 0])
            relevance = float(np.dot(query_vec, np.asarray(p.dense, dtype=np.float32))) if p.dense is not None else 0.0
            hits.append(Hit(
                id=p.id, rank=rank, score=p.score, text=pl.get("text", ""), context=pl.get("context", ""),
                source=pl.get("source", ""), title=pl.get("title", ""), section=pl.get("section", ""),
                kind=pl.get("kind", ""), start=span[0], end=span[1], sources=list(pl.get("sources", [])),
                relevance=relevance,
            ))
        return hits
