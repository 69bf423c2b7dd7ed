"""Everything that speaks Qdrant: the collection schema, upserts, the hybrid query, the file
manifest and the embedded store's lock. Embedded on disk or a server, by one setting.

Two collections:
- `<name>`: one point per distinct passage, a named dense vector and a named BM25 sparse
  vector (IDF computed by Qdrant). Payload: text, context, sources, spans, kind…
- `<name>_files`: the manifest, one vector-less point per ingested file (content hash and the
  ids of its passages) plus one point holding the index's build settings. Keeping it in Qdrant
  means a server-backed index carries its own manifest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rag.errors import CorruptIndex, StoreLocked, StoreUnavailable
from rag.settings import Settings
from rag.sparse_index import SparseIndex

DENSE = "dense"
SPARSE = "bm25"
ID_NAMESPACE = uuid.UUID("6f2c1f8e-6a53-4a43-9d0c-2a8f0b3c9e11")
CONFIG_ID = str(uuid.uuid5(ID_NAMESPACE, "__index_config__"))
FILTER_FIELDS = ("sources", "kind", "title", "section")


def ensure_unlocked(path) -> None:
    """Raise StoreLocked if another process holds the embedded store at `path`. The probe
    takes the same lock qdrant-client takes (EXCLUSIVE, NON_BLOCKING on `.lock`) and releases it
    at once, so call it before opening a client in this process."""
    from pathlib import Path

    lock = Path(path) / ".lock"
    if not lock.exists():
        return
    import portalocker

    with open(lock, "r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            raise StoreLocked(
                f"the index at {path} is in use by another rag process (rag ui, chat or ingest)",
                "ask through that process (the UI), stop it first, or use a Qdrant server (RAG_QDRANT_URL)",
            ) from None
        portalocker.unlock(handle)


def point_id(key: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, key))


@dataclass
class StoredPoint:
    id: str
    payload: dict[str, Any]
    score: float = 0.0
    dense: list[float] | None = None


class QdrantStore:
    def __init__(self, settings: Settings):
        from qdrant_client import QdrantClient

        self.settings = settings
        self.name = settings.collection
        self.files = f"{settings.collection}_files"
        self.remote = bool(settings.qdrant_url)
        self._sparse_index: SparseIndex | None = None
        self._sparse_index_of: object = None  # the local collection the index was built from
        self.use_sparse_index = True  # False: every query goes to Qdrant (tests compare the two)
        if self.remote:
            self.location = settings.qdrant_url
            try:
                self.client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=30)
                self.client.get_collections()
            except Exception as exc:
                raise StoreUnavailable(
                    f"cannot reach the Qdrant server at {settings.qdrant_url} ({type(exc).__name__})",
                    "start it, or unset RAG_QDRANT_URL to use the embedded store",
                ) from None
        else:
            self.location = str(settings.qdrant_path)
            settings.qdrant_path.mkdir(parents=True, exist_ok=True)
            # qdrant-client reads every collection before it takes the folder's lock, so a held
            # store that reads as damaged would look corrupt: ask the lock first.
            ensure_unlocked(settings.qdrant_path)
            try:
                self.client = QdrantClient(path=str(settings.qdrant_path))
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    raise StoreLocked(
                        f"the index at {settings.qdrant_path} is in use by another rag process (rag ui, chat or ingest)",
                        "ask through that process (the UI), stop it first, or use a Qdrant server (RAG_QDRANT_URL)",
                    ) from None
                raise CorruptIndex(f"cannot open the index at {settings.qdrant_path}: {exc}", "run: rag ingest --rebuild") from None
            except Exception as exc:
                raise CorruptIndex(
                    f"the index at {settings.qdrant_path} is unreadable ({type(exc).__name__}: {str(exc)[:120]})",
                    "run: rag ingest --rebuild",
                ) from None

    # -- schema -------------------------------------------------------------------------
    def ensure_collections(self, dim: int) -> None:
        from qdrant_client import models as m

        self._sparse_index = None

        if not self.client.collection_exists(self.name):
            self.client.create_collection(
                self.name,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            if self.remote:
                for field in FILTER_FIELDS:
                    self.client.create_payload_index(self.name, field, m.PayloadSchemaType.KEYWORD)
        if not self.client.collection_exists(self.files):
            self.client.create_collection(self.files, vectors_config={})

    def drop(self) -> None:
        self._sparse_index = None
        for name in (self.name, self.files):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass

    # -- manifest -------------------------------------------------------------------------
    def read_config(self) -> dict | None:
        if not self.client.collection_exists(self.files):
            return None
        got = self.client.retrieve(self.files, [CONFIG_ID], with_payload=True)
        return dict(got[0].payload) if got else None

    def write_config(self, config: dict) -> None:
        self._put_manifest(CONFIG_ID, {"__config__": True, **config})

    def read_manifest(self) -> dict[str, dict]:
        """path → entry, for every ingested file."""
        entries: dict[str, dict] = {}
        if not self.client.collection_exists(self.files):
            return entries
        offset = None
        while True:
            records, offset = self.client.scroll(self.files, limit=1000, offset=offset, with_payload=True)
            for rec in records:
                if not rec.payload.get("__config__"):
                    entries[rec.payload["path"]] = dict(rec.payload)
            if offset is None:
                return entries

    def write_manifest_entry(self, entry: dict) -> None:
        self._put_manifest(point_id("file:" + entry["path"]), entry)

    def delete_manifest_entry(self, path: str) -> None:
        from qdrant_client import models as m

        self.client.delete(self.files, m.PointIdsList(points=[point_id("file:" + path)]))

    def _put_manifest(self, pid: str, payload: dict) -> None:
        from qdrant_client import models as m

        self.client.upsert(self.files, [m.PointStruct(id=pid, vector={}, payload=payload)])

    # -- passages -------------------------------------------------------------------------
    def count(self) -> int:
        if not self.client.collection_exists(self.name):
            return 0
        return self.client.count(self.name, exact=True).count

    def get(self, ids: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for i in range(0, len(ids), 1000):
            for rec in self.client.retrieve(self.name, ids[i : i + 1000], with_payload=True):
                out[str(rec.id)] = dict(rec.payload)
        return out

    def upsert(self, rows: Iterable[tuple[str, list[float], tuple[list[int], list[float]], dict]]) -> None:
        from qdrant_client import models as m

        points = [
            m.PointStruct(
                id=pid,
                vector={DENSE: list(map(float, dense)), SPARSE: m.SparseVector(indices=idx, values=val)},
                payload=payload,
            )
            for pid, dense, (idx, val), payload in rows
        ]
        self._sparse_index = None
        for i in range(0, len(points), 256):
            self.client.upsert(self.name, points[i : i + 256], wait=True)

    def set_payloads(self, updates: dict[str, dict]) -> None:
        from qdrant_client import models as m

        ops = [m.SetPayloadOperation(set_payload=m.SetPayload(payload=p, points=[pid])) for pid, p in updates.items()]
        for i in range(0, len(ops), 256):
            self.client.batch_update_points(self.name, ops[i : i + 256])

    def delete(self, ids: list[str]) -> None:
        from qdrant_client import models as m

        if ids:
            self._sparse_index = None
            self.client.delete(self.name, m.PointIdsList(points=list(ids)))

    def all_ids(self) -> set[str]:
        ids: set[str] = set()
        offset = None
        while True:
            records, offset = self.client.scroll(self.name, limit=2000, offset=offset, with_payload=False)
            ids.update(str(r.id) for r in records)
            if offset is None:
                return ids

    def sources_by_name(self) -> dict[str, int]:
        """source name → number of passages, from the manifest."""
        return {e["source"]: len(e.get("ids", [])) for e in self.read_manifest().values()}

    # -- search ---------------------------------------------------------------------------
    def query(
        self,
        mode: str,
        dense: list[float] | None,
        sparse: tuple[list[int], list[float]] | None,
        limit: int,
        filters: dict[str, list[str]] | None = None,
    ) -> list[StoredPoint]:
        from qdrant_client import models as m

        flt = None
        if filters:
            must = [m.FieldCondition(key=k, match=m.MatchAny(any=list(v))) for k, v in filters.items() if v]
            flt = m.Filter(must=must) if must else None
        if mode != "dense" and flt is None and self.use_sparse_index:
            index = self._local_sparse_index()
            if index is not None:
                return self._query_with_index(index, mode, dense, sparse, limit)
        sparse_vec = m.SparseVector(indices=sparse[0], values=sparse[1]) if sparse else None
        common = dict(limit=limit, query_filter=flt, with_payload=True, with_vectors=[DENSE])
        try:
            if mode == "dense":
                res = self.client.query_points(self.name, query=dense, using=DENSE, **common)
            elif mode == "sparse":
                if not sparse or not sparse[0]:
                    return []
                res = self.client.query_points(self.name, query=sparse_vec, using=SPARSE, **common)
            else:
                depth = max(limit * 4, 20)
                prefetch = [m.Prefetch(query=dense, using=DENSE, limit=depth, filter=flt)]
                if sparse and sparse[0]:
                    prefetch.append(m.Prefetch(query=sparse_vec, using=SPARSE, limit=depth, filter=flt))
                res = self.client.query_points(
                    self.name, prefetch=prefetch, query=m.FusionQuery(fusion=m.Fusion.RRF), **common
                )
        except ValueError as exc:
            if "not found" in str(exc).lower():
                return []
            raise
        out = []
        for p in res.points:
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            out.append(StoredPoint(str(p.id), dict(p.payload or {}), float(p.score), vec))
        return out

    def _local_sparse_index(self) -> SparseIndex | None:
        """The sparse index of the embedded collection, built on first use; None when remote
        (the server has its own index) or when the collection is not one it can mirror."""
        if self.remote:
            return None
        from qdrant_client import models as m

        # Built from local mode's own arrays rather than a scroll: equal scores are ordered by
        # an unstable sort of every slot, deleted ones included, in the collection's slot
        # order, and no public call exposes that order.
        try:
            coll = self.client._client.collections[self.name]
        except (AttributeError, KeyError):
            return None  # no such collection (Qdrant's path says so), or not a client we know
        # A collection dropped and re-created behind this object's back is a new object.
        if self._sparse_index is not None and self._sparse_index_of is coll:
            return self._sparse_index
        try:
            if coll.config.sparse_vectors[SPARSE].modifier != m.Modifier.IDF:
                return None
            n = len(coll.payload)
            vectors = coll.sparse_vectors[SPARSE][:n]
            # (these masks turn from bool to int as points are appended: `~` would be wrong)
            live = (coll.deleted[:n] == 0) & (coll.deleted_per_vector[SPARSE][:n] == 0)
            ids = [str(i) for i in coll.ids_inv[:n]]
        except (AttributeError, KeyError, TypeError):
            return None
        self._sparse_index = SparseIndex(ids, [(v.indices, v.values) for v in vectors], live)
        self._sparse_index_of = coll
        return self._sparse_index

    def _query_with_index(
        self,
        index: SparseIndex,
        mode: str,
        dense: list[float] | None,
        sparse: tuple[list[int], list[float]] | None,
        limit: int,
    ) -> list[StoredPoint]:
        """`query` without a filter, its sparse side served by `index`: the same prefetch
        depths and the same fusion function as qdrant-client's local mode, so the same ids in
        the same order with the same scores."""
        from qdrant_client import models as m
        from qdrant_client.hybrid.fusion import reciprocal_rank_fusion

        has_terms = bool(sparse and sparse[0])
        if mode == "sparse":
            if not has_terms:
                return []
            ranked = index.search(sparse[0], sparse[1], limit)
        else:
            depth = max(limit * 4, 20)
            responses = [self.client.query_points(self.name, query=dense, using=DENSE, limit=depth, with_payload=False).points]
            if has_terms:
                responses.append([
                    m.ScoredPoint(id=pid, version=0, score=score) for pid, score in index.search(sparse[0], sparse[1], depth)
                ])
            ranked = [(str(p.id), p.score) for p in reciprocal_rank_fusion(responses, limit=limit)]
        if not ranked:
            return []
        records = {
            str(r.id): r
            for r in self.client.retrieve(self.name, [pid for pid, _ in ranked], with_payload=True, with_vectors=[DENSE])
        }
        out = []
        for pid, score in ranked:
            rec = records.get(pid)
            if rec is None:
                continue
            vec = rec.vector.get(DENSE) if isinstance(rec.vector, dict) else None
            out.append(StoredPoint(pid, dict(rec.payload or {}), float(score), vec))
        return out
