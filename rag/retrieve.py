"""question → ranked passages: dense, keyword (BM25) or hybrid (reciprocal rank fusion done
by Qdrant in one call), with optional metadata filters. An expansion (a hypothetical answer,
see rag/expansion.py) joins the question in both query vectors."""

from __future__ import annotations

import numpy as np

from rag.errors import BadInput
from rag.store import Store
from rag.types import Hit

MODES = ("hybrid", "dense", "sparse")
# Chosen on eval/gold.jsonl among 0, 0.3, 0.5 and 1 (eval/README.md): 0.5 is the only weight
# that keeps every answerable question's evidence in the hybrid top 5.
EXPANSION_TERM_WEIGHT = 0.5


def keyword_query(
    sparse, question: str, expansion: str, weight: float = EXPANSION_TERM_WEIGHT
) -> tuple[list[int], list[float]]:
    """The question's terms at full weight, the expansion's other terms at `weight`: a guess
    full of names must not outvote the question's own words (at full weight "What does MLflow
    help with?" lost its one MLflow passage, and a guessed "Ian Goodfellow" pulled the GAN
    passage into a question about VAEs)."""
    indices, values = sparse.encode_query(question)
    weights = dict(zip(indices, values))
    if expansion and weight > 0:
        for term, value in zip(*sparse.encode_query(expansion)):
            weights.setdefault(term, weight * value)
    return list(weights), list(weights.values())


def dense_query(
    question_vec: np.ndarray, expansion_vec: np.ndarray | None, weight: float = 1.0
) -> np.ndarray:
    """The question's vector, moved towards the expansion's by `weight`, unit length again."""
    if expansion_vec is None or weight == 0:
        return question_vec
    mixed = question_vec + weight * expansion_vec
    return mixed / max(float(np.linalg.norm(mixed)), 1e-9)


class Retriever:
    def __init__(self, store: Store, dense, sparse):
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
            matches = [
                s
                for s in known
                if s == name
                or s.endswith("/" + name)
                or s.rsplit("/", 1)[-1].rsplit(".", 1)[0] == name
            ]
            if not matches:
                raise BadInput(
                    f"no indexed document matches {name!r}", "see `rag sources` for the names"
                )
            chosen.extend(matches)
        return chosen

    def search(
        self,
        query: str,
        mode: str = "hybrid",
        top_k: int = 5,
        sources: list[str] | None = None,
        kinds: list[str] | None = None,
        expansion: str = "",
    ) -> list[Hit]:
        if mode not in MODES:
            raise BadInput(f"unknown retrieval mode {mode!r}", "use hybrid, dense or sparse")
        if expansion:
            question_vec, expansion_vec = self._dense().encode([query, expansion])
        else:
            question_vec, expansion_vec = self._dense().encode_query(query), None
        search_vec = dense_query(question_vec, expansion_vec)
        sparse_vec = keyword_query(self._sparse(), query, expansion) if mode != "dense" else None
        filters = {}
        if sources:
            filters["sources"] = self.resolve_sources(sources)
        if kinds:
            filters["kind"] = kinds
        points = self.store.query(mode, search_vec.tolist(), sparse_vec, top_k, filters)
        hits = []
        for rank, p in enumerate(points, 1):
            pl = p.payload
            span = pl.get("spans", {}).get(pl.get("source"), [0, 0])
            # Against the question alone: the abstain threshold (min_relevance) is calibrated on
            # it, and a confident wrong expansion must not make a passage look relevant.
            relevance = (
                float(np.dot(question_vec, np.asarray(p.dense, dtype=np.float32)))
                if p.dense is not None
                else 0.0
            )
            hits.append(
                Hit(
                    id=p.id,
                    rank=rank,
                    score=p.score,
                    text=pl.get("text", ""),
                    context=pl.get("context", ""),
                    source=pl.get("source", ""),
                    title=pl.get("title", ""),
                    section=pl.get("section", ""),
                    kind=pl.get("kind", ""),
                    start=span[0],
                    end=span[1],
                    sources=list(pl.get("sources", [])),
                    relevance=relevance,
                )
            )
        return hits
