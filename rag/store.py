"""The index's storage interface, shared by its two backends, and the choice between them.

- `rag.store_edge.EdgeStore`: Qdrant Edge, Qdrant's own engine in this process (the default;
  files under RAG_DATA_DIR/index).
- `rag.store_server.ServerStore`: a Qdrant server or cluster through qdrant-client, when
  RAG_QDRANT_URL is set.

Both keep two collections (Edge: two shards):
- `<name>`: one point per distinct passage, a named dense vector and a named BM25 sparse
  vector whose IDF the engine computes (`Modifier.IDF`). Payload: text, context, sources,
  spans, kind… Hybrid search is one query: a dense and a sparse prefetch fused by RRF.
- `<name>_files`: the manifest, one point per ingested file (content hash and the ids of its
  passages) plus one point holding the index's build settings. It lives beside the passages,
  so a server-backed index carries its own manifest.

tests/test_store.py runs one contract suite against both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

DENSE = "dense"
SPARSE = "bm25"
ID_NAMESPACE = uuid.UUID("6f2c1f8e-6a53-4a43-9d0c-2a8f0b3c9e11")
CONFIG_ID = str(uuid.uuid5(ID_NAMESPACE, "__index_config__"))
FILTER_FIELDS = ("sources", "kind", "title", "section")
# Qdrant's own default RRF constant, so both backends fuse alike.
RRF_K = 2
SCROLL_PAGE = 1000
WRITE_BATCH = 256


def point_id(key: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, key))


def prefetch_depth(limit: int) -> int:
    """How deep each side of a hybrid query looks before fusion."""
    return max(limit * 4, 20)


@dataclass
class StoredPoint:
    id: str
    payload: dict[str, Any]
    score: float = 0.0
    dense: list[float] | None = None


SparseVec = tuple[list[int], list[float]]
Row = tuple[str, list[float], SparseVec, dict]


class Store(Protocol):
    """What ingest, retrieval and the app ask of an index."""

    location: str
    remote: bool

    def ensure_collections(self, dim: int) -> None: ...
    def optimize(self) -> None: ...
    def drop(self) -> None: ...
    def close(self) -> None: ...
    def read_config(self) -> dict | None: ...
    def write_config(self, config: dict) -> None: ...
    def read_manifest(self) -> dict[str, dict]: ...
    def write_manifest_entry(self, entry: dict) -> None: ...
    def delete_manifest_entry(self, path: str) -> None: ...
    def count(self) -> int: ...
    def get(self, ids: list[str]) -> dict[str, dict]: ...
    def payloads(self) -> Iterator[tuple[str, dict]]: ...
    def upsert(self, rows: Iterable[Row]) -> None: ...
    def set_payloads(self, updates: dict[str, dict]) -> None: ...
    def delete(self, ids: list[str]) -> None: ...
    def all_ids(self) -> set[str]: ...
    def sources_by_name(self) -> dict[str, int]: ...
    def query(
        self,
        mode: str,
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        filters: dict[str, list[str]] | None = None,
    ) -> list[StoredPoint]: ...


def manifest_id(path: str) -> str:
    return point_id("file:" + path)


def manifest_from(records: Iterable[tuple[str, dict]]) -> dict[str, dict]:
    """path → entry, from the manifest collection's (id, payload) records; the build
    settings' record is not a file."""
    return {payload["path"]: payload for _, payload in records if not payload.get("__config__")}


def sources_by_name(manifest: dict[str, dict]) -> dict[str, int]:
    """source name → number of passages, from a manifest."""
    return {e["source"]: len(e.get("ids", [])) for e in manifest.values()}


class LockedStore:
    """A store whose every call holds `lock`: how an ingest shares the store with searches.
    Between two calls (while a batch is being embedded, the slow part) questions are answered
    from the index as it stands, instead of waiting for the whole ingest."""

    def __init__(self, store, lock):
        self._store = store
        self._lock = lock

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return locked
