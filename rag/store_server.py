"""The index on a Qdrant server or cluster, through qdrant-client (RAG_QDRANT_URL).

The same two collections as the embedded store (rag/store.py), with keyword payload indexes
on the filter fields. The manifest lives on the server too, so any machine pointed at the
same server sees the same index. Tests run this class against qdrant-client's local mode
(`QdrantClient(path=…)`), since no Qdrant server is installable on the test machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rag.errors import StoreUnavailable
from rag.settings import Settings
from rag.store import (
    CONFIG_ID,
    DENSE,
    FILTER_FIELDS,
    RRF_K,
    SCROLL_PAGE,
    SPARSE,
    WRITE_BATCH,
    Row,
    SparseVec,
    StoredPoint,
    manifest_from,
    manifest_id,
    prefetch_depth,
    sources_by_name,
)


class ServerStore:
    remote = True

    def __init__(self, client, name: str, location: str):
        self.client = client
        self.name = name
        self.files = f"{name}_files"
        self.location = location

    @classmethod
    def connect(cls, settings: Settings) -> ServerStore:
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(
                url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=30
            )
            client.get_collections()
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot reach the Qdrant server at {settings.qdrant_url} ({type(exc).__name__})",
                "start it, or unset RAG_QDRANT_URL to use the embedded store",
            ) from None
        return cls(client, settings.collection, settings.qdrant_url)

    # -- schema -------------------------------------------------------------------------
    def ensure_collections(self, dim: int) -> None:
        from qdrant_client import models as m

        if not self.client.collection_exists(self.name):
            self.client.create_collection(
                self.name,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            if not self._local_mode():
                for field in FILTER_FIELDS:
                    self.client.create_payload_index(self.name, field, m.PayloadSchemaType.KEYWORD)
        if not self.client.collection_exists(self.files):
            self.client.create_collection(self.files, vectors_config={})

    def _local_mode(self) -> bool:
        # qdrant-client's local mode (the tests' stand-in for a server) warns that payload
        # indexes have no effect there.
        return type(getattr(self.client, "_client", None)).__name__.startswith("QdrantLocal")

    def optimize(self) -> None:
        """The server optimises in the background."""

    def drop(self) -> None:
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
        if not self.client.collection_exists(self.files):
            return {}
        return manifest_from(self._scroll(self.files))

    def write_manifest_entry(self, entry: dict) -> None:
        self._put_manifest(manifest_id(entry["path"]), entry)

    def delete_manifest_entry(self, path: str) -> None:
        from qdrant_client import models as m

        self.client.delete(self.files, m.PointIdsList(points=[manifest_id(path)]))

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
        for i in range(0, len(ids), SCROLL_PAGE):
            for rec in self.client.retrieve(self.name, ids[i : i + SCROLL_PAGE], with_payload=True):
                out[str(rec.id)] = dict(rec.payload)
        return out

    def payloads(self) -> Iterator[tuple[str, dict]]:
        if self.client.collection_exists(self.name):
            yield from self._scroll(self.name)

    def upsert(self, rows: Iterable[Row]) -> None:
        from qdrant_client import models as m

        points = [
            m.PointStruct(
                id=pid,
                vector={
                    DENSE: list(map(float, dense)),
                    SPARSE: m.SparseVector(indices=idx, values=val),
                },
                payload=payload,
            )
            for pid, dense, (idx, val), payload in rows
        ]
        for i in range(0, len(points), WRITE_BATCH):
            self.client.upsert(self.name, points[i : i + WRITE_BATCH], wait=True)

    def set_payloads(self, updates: dict[str, dict]) -> None:
        from qdrant_client import models as m

        ops = [
            m.SetPayloadOperation(set_payload=m.SetPayload(payload=p, points=[pid]))
            for pid, p in updates.items()
        ]
        for i in range(0, len(ops), WRITE_BATCH):
            self.client.batch_update_points(self.name, ops[i : i + WRITE_BATCH])

    def delete(self, ids: list[str]) -> None:
        from qdrant_client import models as m

        if ids:
            self.client.delete(self.name, m.PointIdsList(points=list(ids)))

    def all_ids(self) -> set[str]:
        if not self.client.collection_exists(self.name):
            return set()
        return {pid for pid, _ in self._scroll(self.name, with_payload=False)}

    def sources_by_name(self) -> dict[str, int]:
        return sources_by_name(self.read_manifest())

    def _scroll(self, collection: str, with_payload: bool = True) -> Iterator[tuple[str, dict]]:
        offset = None
        while True:
            records, offset = self.client.scroll(
                collection, limit=SCROLL_PAGE, offset=offset, with_payload=with_payload
            )
            for rec in records:
                yield str(rec.id), dict(rec.payload or {})
            if offset is None:
                return

    # -- search ---------------------------------------------------------------------------
    def query(
        self,
        mode: str,
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        filters: dict[str, list[str]] | None = None,
    ) -> list[StoredPoint]:
        from qdrant_client import models as m

        if not self.client.collection_exists(self.name):
            return []
        must = [
            m.FieldCondition(key=k, match=m.MatchAny(any=list(v)))
            for k, v in (filters or {}).items()
            if v
        ]
        flt = m.Filter(must=must) if must else None
        has_terms = bool(sparse and sparse[0])
        sparse_vec = (
            m.SparseVector(indices=list(sparse[0]), values=list(sparse[1])) if has_terms else None
        )
        common = dict(limit=limit, query_filter=flt, with_payload=True, with_vectors=[DENSE])
        if mode == "dense":
            res = self.client.query_points(self.name, query=dense, using=DENSE, **common)
        elif mode == "sparse":
            if not has_terms:
                return []
            res = self.client.query_points(self.name, query=sparse_vec, using=SPARSE, **common)
        else:
            depth = prefetch_depth(limit)
            prefetch = [m.Prefetch(query=dense, using=DENSE, limit=depth, filter=flt)]
            if has_terms:
                prefetch.append(m.Prefetch(query=sparse_vec, using=SPARSE, limit=depth, filter=flt))
            res = self.client.query_points(
                self.name, prefetch=prefetch, query=m.RrfQuery(rrf=m.Rrf(k=RRF_K)), **common
            )
        out = []
        for p in res.points:
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            out.append(StoredPoint(str(p.id), dict(p.payload or {}), float(p.score), vec))
        return out
