"""The embedded index: two Qdrant Edge shards under RAG_DATA_DIR/index/<collection>/.

Qdrant Edge is Qdrant's engine in-process: HNSW for the dense vectors, an inverted index for
the BM25 sparse vectors with the IDF modifier, prefetch + RRF fusion in one query, payload
indexes for filters, and a write-ahead log, so an update that returned survives a kill -9.
One process owns a collection: EdgeStore takes an exclusive lock on
RAG_DATA_DIR/index/<collection>.lock before it reads anything (Edge locks each shard's WAL too,
but only after reading the shard's config, so a held shard that reads as damaged would look
corrupt rather than in use). A second process gets StoreLocked, and talks to the owner through
`rag serve` instead (rag/server.py).

Over 300 lines, on purpose: it is one implementation of the Store protocol (rag/store.py),
method for method beside rag/store_server.py, so the two can be read side by side.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from rag.errors import CorruptIndex, StoreLocked
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

# A shard needs at least one vector; the manifest's points carry none of this one.
MANIFEST_VECTOR = "none"


def _is_lock_error(exc: Exception) -> bool:
    return "WouldBlock" in str(exc) or "lock" in str(exc).lower() and "wal" in str(exc).lower()


def locked_error(path: Path) -> StoreLocked:
    return StoreLocked(
        f"the index at {path} is in use by another rag process (rag ui, serve, chat or ingest)",
        "start `rag serve` (or `rag ui`) and every rag command will go through it, "
        "or stop the other process",
    )


class _Guarded:
    """A shard whose engine errors come out as CorruptIndex: damage inside a segment (a
    garbled payload page, say) is found only when a read reaches it, and must reach the user
    as the one line that says to rebuild, not as a traceback."""

    def __init__(self, shard, root: Path):
        self._shard, self._root = shard, root

    def __getattr__(self, name):
        method = getattr(self._shard, name)

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except (TypeError, ValueError):
                raise  # a wrong call is a bug here, not damage there
            except Exception as exc:
                if _is_lock_error(exc):
                    raise locked_error(self._root) from None
                raise CorruptIndex(
                    f"the index at {self._root} is damaged ({str(exc)[:160]})",
                    "run: rag ingest --rebuild",
                ) from None

        return call


class OwnerLock:
    """An exclusive, non-blocking lock on a file beside the collection's folder (outside it,
    so deleting the folder for a rebuild keeps the lock). The OS drops it when the process
    dies, so a kill -9 leaves no stale lock."""

    def __init__(self, settings: Settings):
        import portalocker

        self.root = settings.index_path / settings.collection
        settings.index_path.mkdir(parents=True, exist_ok=True)
        self._handle = open(settings.index_path / f"{settings.collection}.lock", "a+")
        try:
            portalocker.lock(
                self._handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
        except portalocker.exceptions.LockException:
            self._handle.close()
            raise locked_error(self.root) from None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None


def remove_damaged(settings: Settings) -> None:
    """Delete a collection too damaged to open, for `rag ingest --rebuild`; StoreLocked if
    another process owns it."""
    lock = OwnerLock(settings)
    try:
        shutil.rmtree(lock.root, ignore_errors=True)
    finally:
        lock.release()


class EdgeStore:
    remote = False

    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.collection
        self.root = settings.index_path / settings.collection
        self.location = str(self.root)
        self._passages = None
        self._files = None
        self._lock = OwnerLock(settings)
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    # -- shards ---------------------------------------------------------------------------
    def _load(self, path: Path):
        from qdrant_edge import EdgeShard

        try:
            return _Guarded(EdgeShard.load(str(path)), self.root)
        except Exception as exc:
            if _is_lock_error(exc):
                raise locked_error(self.root) from None
            raise CorruptIndex(
                f"the index at {self.root} is unreadable ({type(exc).__name__}: {str(exc)[:160]})",
                "run: rag ingest --rebuild",
            ) from None

    def _open(self) -> None:
        passages, files = self.root / "passages", self.root / "files"
        if files.exists():
            self._files = self._load(files)
        if passages.exists():
            try:
                self._passages = self._load(passages)
            except Exception:
                self._close_shards()
                raise
        if self._files is not None and self._passages is None and self.read_config() is not None:
            self._close_shards()
            raise CorruptIndex(
                f"the index at {self.root} has a manifest but no passages",
                "run: rag ingest --rebuild",
            )

    def ensure_collections(self, dim: int) -> None:
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeShard,
            EdgeSparseVectorParams,
            EdgeVectorParams,
            Modifier,
            PayloadSchemaType,
            UpdateOperation,
        )

        if self._passages is None:
            config = EdgeConfig(
                vectors={DENSE: EdgeVectorParams(size=dim, distance=Distance.Cosine)},
                sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
            )
            self._passages = _Guarded(
                EdgeShard.create(str(self.root / "passages"), config), self.root
            )
            for field in FILTER_FIELDS:
                self._passages.update(
                    UpdateOperation.create_field_index(field, PayloadSchemaType.Keyword)
                )
        if self._files is None:
            config = EdgeConfig(sparse_vectors={MANIFEST_VECTOR: EdgeSparseVectorParams()})
            self._files = _Guarded(EdgeShard.create(str(self.root / "files"), config), self.root)

    def optimize(self) -> None:
        """Merge segments and build the HNSW graph. Edge runs no background optimiser: without
        this, every point stays in the appendable segment and dense search scans them all.
        Qdrant's optimiser writes new segments before it retires old ones, so a kill during it
        leaves the old ones in place."""
        if self._passages is not None:
            self._passages.optimize()

    def drop(self) -> None:
        self._close_shards()
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        self._close_shards()
        self._lock.release()

    def _close_shards(self) -> None:
        for shard in (self._passages, self._files):
            if shard is not None:
                try:
                    shard.flush()
                    shard.close()
                except Exception:
                    pass
        self._passages = self._files = None

    # -- manifest -------------------------------------------------------------------------
    def read_config(self) -> dict | None:
        if self._files is None:
            return None
        got = self._files.retrieve([CONFIG_ID], True, False)
        return dict(got[0].payload) if got else None

    def write_config(self, config: dict) -> None:
        self._put_manifest(CONFIG_ID, {"__config__": True, **config})

    def read_manifest(self) -> dict[str, dict]:
        return {} if self._files is None else manifest_from(_scroll(self._files))

    def write_manifest_entry(self, entry: dict) -> None:
        self._put_manifest(manifest_id(entry["path"]), entry)

    def delete_manifest_entry(self, path: str) -> None:
        from qdrant_edge import UpdateOperation

        if self._files is not None:
            self._files.update(UpdateOperation.delete_points([manifest_id(path)]))

    def _put_manifest(self, pid: str, payload: dict) -> None:
        from qdrant_edge import Point, UpdateOperation

        self._files.update(UpdateOperation.upsert_points([Point(pid, {}, payload)]))

    # -- passages -------------------------------------------------------------------------
    def count(self) -> int:
        from qdrant_edge import CountRequest

        return 0 if self._passages is None else self._passages.count(CountRequest(exact=True))

    def get(self, ids: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        if self._passages is None:
            return out
        for i in range(0, len(ids), SCROLL_PAGE):
            for rec in self._passages.retrieve(ids[i : i + SCROLL_PAGE], True, False):
                out[str(rec.id)] = dict(rec.payload or {})
        return out

    def payloads(self) -> Iterator[tuple[str, dict]]:
        if self._passages is not None:
            yield from _scroll(self._passages)

    def upsert(self, rows: Iterable[Row]) -> None:
        from qdrant_edge import Point, SparseVector, UpdateOperation

        points = [
            Point(
                pid,
                {
                    DENSE: list(map(float, dense)),
                    SPARSE: SparseVector(list(idx), list(map(float, val))),
                },
                payload,
            )
            for pid, dense, (idx, val), payload in rows
        ]
        for i in range(0, len(points), WRITE_BATCH):
            self._passages.update(UpdateOperation.upsert_points(points[i : i + WRITE_BATCH]))

    def set_payloads(self, updates: dict[str, dict]) -> None:
        from qdrant_edge import UpdateOperation

        for pid, payload in updates.items():
            self._passages.update(UpdateOperation.set_payload([pid], payload))

    def delete(self, ids: list[str]) -> None:
        from qdrant_edge import UpdateOperation

        ids = list(ids)
        for i in range(0, len(ids), WRITE_BATCH):
            self._passages.update(UpdateOperation.delete_points(ids[i : i + WRITE_BATCH]))

    def all_ids(self) -> set[str]:
        if self._passages is None:
            return set()
        return {pid for pid, _ in _scroll(self._passages, with_payload=False)}

    def sources_by_name(self) -> dict[str, int]:
        return sources_by_name(self.read_manifest())

    # -- search ---------------------------------------------------------------------------
    def query(
        self,
        mode: str,
        dense: list[float] | None,
        sparse: SparseVec | None,
        limit: int,
        filters: dict[str, list[str]] | None = None,
    ) -> list[StoredPoint]:
        from qdrant_edge import (
            FieldCondition,
            Filter,
            Fusion,
            MatchAny,
            Prefetch,
            Query,
            QueryRequest,
            SparseVector,
        )

        if self._passages is None:
            return []
        must = [
            FieldCondition(key=k, match=MatchAny(any=list(v)))
            for k, v in (filters or {}).items()
            if v
        ]
        flt = Filter(must=must) if must else None
        has_terms = bool(sparse and sparse[0])
        dense_q = Query.Nearest(list(map(float, dense)), using=DENSE) if dense is not None else None
        sparse_q = (
            Query.Nearest(SparseVector(list(sparse[0]), list(map(float, sparse[1]))), using=SPARSE)
            if has_terms
            else None
        )
        common = dict(limit=limit, filter=flt, with_payload=True, with_vector=[DENSE])
        if mode == "dense":
            request = QueryRequest(query=dense_q, **common)
        elif mode == "sparse":
            if not has_terms:
                return []
            request = QueryRequest(query=sparse_q, **common)
        else:
            depth = prefetch_depth(limit)
            prefetches = [Prefetch(limit=depth, query=dense_q, filter=flt)]
            if has_terms:
                prefetches.append(Prefetch(limit=depth, query=sparse_q, filter=flt))
            request = QueryRequest(prefetches=prefetches, query=Fusion.Rrf(k=RRF_K), **common)
        out = []
        for p in self._passages.query(request):
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            out.append(StoredPoint(str(p.id), dict(p.payload or {}), float(p.score), vec))
        return out


def _scroll(shard, with_payload: bool = True) -> Iterator[tuple[str, dict]]:
    from qdrant_edge import ScrollRequest

    offset = None
    while True:
        records, offset = shard.scroll(
            ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, with_payload=with_payload, with_vector=False
            )
        )
        for rec in records:
            yield str(rec.id), dict(rec.payload or {})
        if offset is None:
            return
