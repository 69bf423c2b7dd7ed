"""An in-memory inverted index over the BM25 sparse vectors, for the embedded store.

qdrant-client's local mode scores a sparse query with a Python loop over every point (~100 ms
at 10k passages); this scores only the postings of the query's terms, with numpy. It copies
local mode's arithmetic step by step, so the ranking is the same to the last tie:
- IDF (`Modifier.IDF`) is ln((N - df + 0.5) / (df + 0.5) + 1), N and df over live points;
- a point's score is the sum, in double precision and in ascending term order, of
  query weight x IDF x document weight, then rounded to float32;
- a point sharing no term with the query scores -inf and is never returned;
- the order is `np.argsort(scores)[::-1]` over every slot of the collection, deleted ones
  included: that sort is not stable, so equal scores keep Qdrant's order only if the array
  it sorts is the same one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain

import numpy as np


class SparseIndex:
    def __init__(
        self,
        ids: Sequence[str],
        vectors: Sequence[tuple[Sequence[int], Sequence[float]]],
        live: np.ndarray,
    ):
        """`ids`, `vectors` and `live` are parallel, one entry per slot of the collection, in
        the collection's own slot order; `live` is False where a point (or its sparse vector)
        is deleted."""
        self.ids = list(ids)
        self.live = np.asarray(live, dtype=bool)
        self.n_live = int(self.live.sum())
        lengths = np.fromiter((len(ix) for ix, _ in vectors), dtype=np.int64, count=len(vectors))
        total = int(lengths.sum())
        terms = np.fromiter(chain.from_iterable(ix for ix, _ in vectors), dtype=np.int64, count=total)
        # float64: local mode multiplies and adds these as Python floats
        values = np.fromiter(chain.from_iterable(v for _, v in vectors), dtype=np.float64, count=total)
        rows = np.repeat(np.arange(len(vectors), dtype=np.int64), lengths)
        # Postings as one run per term: the k-th term's are rows[bounds[k]:bounds[k + 1]].
        order = np.argsort(terms, kind="stable")
        self.terms, first = np.unique(terms[order], return_index=True)
        self.bounds = np.append(first, total)
        self.rows, self.values = rows[order], values[order]
        live_entries = self.live[self.rows].astype(np.int64)
        self.df = np.add.reduceat(live_entries, first) if total else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n_live

    def _posting(self, term: int) -> int | None:
        at = int(np.searchsorted(self.terms, term))
        return at if at < len(self.terms) and self.terms[at] == term else None

    def search(self, indices: Sequence[int], values: Sequence[float], limit: int) -> list[tuple[str, float]]:
        """(id, score) of the best `limit` live points sharing a term with the query."""
        if not indices or limit <= 0:
            return []
        acc = np.zeros(len(self.ids), dtype=np.float64)
        hit = np.zeros(len(self.ids), dtype=bool)
        for term, value in sorted(zip(indices, values)):
            at = self._posting(term)
            if at is None:
                continue
            df = int(self.df[at])
            idf = math.log((self.n_live - df + 0.5) / (df + 0.5) + 1)
            span = slice(self.bounds[at], self.bounds[at + 1])
            rows = self.rows[span]
            acc[rows] += (value * idf) * self.values[span]
            hit[rows] = True
        scores = acc.astype(np.float32)
        scores[~hit] = -np.inf
        order = np.argsort(scores)[::-1]
        order = order[self.live[order] & hit[order]][:limit]
        return [(self.ids[row], float(scores[row])) for row in order]
