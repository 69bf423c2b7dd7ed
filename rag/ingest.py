"""load → normalise → chunk → embed → store, incremental by content hash.

Over 300 lines, on purpose: deciding what changed, writing it and undoing a half-finished
run are one job, correct only together.

Crash safety: before a file's passages are written, its manifest entry records them as
`pending_ids`; only after they are stored and the file's stale passages are detached does the
entry become final. Passage ids are derived from the passage's content, so a re-run after a
kill rewrites the same points instead of adding new ones, and a pending entry tells the next
run what to clean up. The next `rag ingest` therefore ends exactly where a clean one would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rag.chunking import CHUNKER_VERSION, chunk_document
from rag.errors import BadInput, CorruptIndex
from rag.loaders import FoundFile, SkipFile, find_files, load
from rag.normalise import dedup_key
from rag.settings import Settings
from rag.store import Store, point_id
from rag.tokens import token_counter
from rag.types import IngestReport, Passage

Progress = Callable[[int, int, str], None]
BATCH_PASSAGES = 512
T = TypeVar("T")


def index_config(settings: Settings, dim: int) -> dict:
    """What the stored vectors depend on; a difference forces a full rebuild."""
    return {
        "embed_model": settings.embed_model,
        "dim": dim,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "bm25_avg_len": settings.bm25_avg_len,
        "chunker_version": CHUNKER_VERSION,
    }


def batches(
    items: Iterable[T], size: Callable[[T], int], limit: int | None = None
) -> Iterator[list[T]]:
    """Items (files and their passages) gathered until they hold at least `limit` passages
    (BATCH_PASSAGES, read at call time): the unit ingest embeds in one encoder call and
    commits in one manifest step. Larger batches embed faster; smaller ones leave less for the
    next run to redo after a kill."""
    limit = BATCH_PASSAGES if limit is None else limit
    batch, held = [], 0
    for item in items:
        batch.append(item)
        held += size(item)
        if held >= limit:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def ingest(
    paths: list[Path],
    settings: Settings,
    store: Store,
    dense,  # () -> DenseEncoder, called only when something must be embedded
    sparse,  # () -> SparseEncoder
    rebuild: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    started = time.perf_counter()
    report = IngestReport()
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}", "check the path")

    # A rebuild reads nothing of the old index: it may be the damage being rebuilt away.
    stored = None if rebuild else store.read_config()
    dim = stored.get("dim") if stored else None
    wanted_without_dim = index_config(settings, 0)
    if rebuild:
        report.rebuilt = "asked for (--rebuild)"
    elif stored is not None:
        changed = [
            k
            for k, v in wanted_without_dim.items()
            if k != "dim"
            and stored.get(k) != v
            # Unset, the BM25 length is the index's own measurement, not a wish to compare.
            and not (k == "bm25_avg_len" and v is None)
        ]
        if changed:
            report.rebuilt = "index settings changed (" + ", ".join(changed) + ")"
    config = stored
    if report.rebuilt or stored is None:
        store.drop()
        dim = dense().dim
        store.ensure_collections(dim)
        config = index_config(settings, dim)
        store.write_config(config)

    files, skipped = find_files([Path(p) for p in paths])
    report.skipped.extend(skipped)
    manifest = store.read_manifest()
    roots = [os.path.abspath(p) for p in paths]
    # Passages of finished entries must all be there; fewer means the store lost data
    # (a truncated file opens as an empty collection without complaint).
    committed = {
        pid for e in manifest.values() if not e.get("pending_ids") for pid in e.get("ids", [])
    }
    if committed and store.count() < len(committed):
        raise CorruptIndex(
            f"the index holds {store.count()} passages but its manifest lists {len(committed)}",
            "run: rag ingest --rebuild",
        )

    todo: list[tuple[FoundFile, dict | None, os.stat_result]] = []
    seen: set[str] = set()
    for found in files:
        key = str(found.path)
        seen.add(key)
        entry = manifest.get(key)
        try:
            st = found.path.stat()
        except OSError:
            report.skipped.append((found.source, "file disappeared while reading"))
            continue
        if (
            entry
            and not entry.get("pending_ids")
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and entry.get("source") == found.source
        ):
            report.unchanged_files += 1
            report.files += 1
            report.passages += len(entry.get("ids", []))
            continue
        todo.append((found, entry, st))

    deleted = [e for path, e in manifest.items() if path not in seen and _under(path, roots)]
    for entry in deleted:
        report.removed += _detach(
            store, entry["source"], set(entry.get("ids", [])) | set(entry.get("pending_ids", []))
        )
        store.delete_manifest_entry(entry["path"])

    done = 0
    total = len(todo)

    count = token_counter(settings.embed_model)

    def chunked() -> Iterator[tuple]:
        nonlocal done
        for found, entry, st in todo:
            try:
                doc = load(found)
            except SkipFile as exc:
                report.skipped.append((found.source, str(exc)))
                if entry:  # a file that turned bad loses its old passages
                    report.removed += _detach(
                        store,
                        entry["source"],
                        set(entry.get("ids", [])) | set(entry.get("pending_ids", [])),
                    )
                    store.delete_manifest_entry(entry["path"])
                done += 1
                if progress:
                    progress(done, total, found.source)
                continue
            passages = chunk_document(doc, settings.chunk_tokens, settings.chunk_overlap, count)
            # The stat taken before reading: the file may vanish before the batch is written.
            yield found, entry, passages, doc.sha256, st

    avg_len = config.get("bm25_avg_len")
    items: Iterable[tuple] = chunked()
    if avg_len is None and todo:
        # A new index measures its corpus's passage length over every passage before the
        # first is written (the first files alone are no fair sample of a manual); later
        # runs keep that figure, so old and new passages are weighed alike.
        items = list(items)
        avg_len = sparse().average_length([p.search_text for item in items for p in item[2]])
        if avg_len is not None:
            store.write_config(dict(config, bm25_avg_len=avg_len))
    for batch in batches(items, lambda item: len(item[2])):
        _write_batch(store, batch, dense, sparse, avg_len, report)
        done += len(batch)
        if progress:
            progress(done, total, batch[-1][0].source)
    if report.added or report.removed:
        store.optimize()
    report.seconds = time.perf_counter() - started
    return report


def _write_batch(store: Store, batch, dense, sparse, avg_len: float, report: IngestReport) -> None:
    # 1. Record intent, so a kill from here on is repaired by the next run.
    plans = []
    for found, entry, passages, sha, st in batch:
        ids: dict[str, Passage] = {}
        for p in passages:
            ids.setdefault(point_id(dedup_key(p.text)), p)
        old = set(entry.get("ids", [])) | set(entry.get("pending_ids", [])) if entry else set()
        final = {
            "path": str(found.path),
            "source": found.source,
            "sha256": sha,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ids": list(ids),
        }
        pending = dict(
            final,
            ids=list(entry.get("ids", [])) if entry else [],
            pending_ids=sorted(set(ids) | old),
        )
        store.write_manifest_entry(pending)
        renamed_from = entry["source"] if entry and entry.get("source") != found.source else None
        plans.append((found.source, ids, old, final, renamed_from))
        report.files += 1
        report.passages += len(ids)
        report.duplicates += len(passages) - len(ids)

    # 2. Store passages: new ones embedded and written, known ones gain this source.
    existing = store.get(sorted({pid for _, ids, *_ in plans for pid in ids}))
    new: dict[str, dict] = {}
    new_passages: dict[str, Passage] = {}
    merged: dict[str, dict] = {}
    for source, ids, *_ in plans:
        for pid, p in ids.items():
            payload = existing.get(pid) or new.get(pid)
            if payload is None:
                new[pid] = payload_for(p, source)
                new_passages[pid] = p
                report.added += 1
            elif source not in payload["sources"]:
                report.duplicates += 1
                payload["sources"].append(source)
                payload["spans"][source] = [p.start, p.end]
                if pid in existing:
                    merged[pid] = {"sources": payload["sources"], "spans": payload["spans"]}
            elif payload["spans"].get(source) != [p.start, p.end]:
                # An edited file moves its unchanged passages: keep their spans true.
                payload["spans"][source] = [p.start, p.end]
                update = {"spans": payload["spans"]}
                if payload.get("source") == source:
                    update.update(context=p.context, section=p.section, title=p.title)
                if pid in existing:
                    merged.setdefault(pid, {}).update(update)
    if new:
        order = list(new)
        texts = [new_passages[pid].search_text for pid in order]
        vectors = dense().encode(texts)
        sparse_vecs = sparse().encode(texts, avg_len)
        store.upsert(zip(order, vectors, sparse_vecs, (new[pid] for pid in order)))
    if merged:
        store.set_payloads(merged)

    # 3. Detach what the files no longer contain, then make the entries final.
    for source, ids, old, final, renamed_from in plans:
        stale = old - set(ids)
        if stale:
            report.removed += _detach(store, source, stale)
        if renamed_from:  # the same file reached under another name: the old name goes
            report.removed += _detach(store, renamed_from, old)
        store.write_manifest_entry(dict(final, pending_ids=[]))


def payload_for(p: Passage, source: str) -> dict:
    """What the store keeps of a passage first found in `source`."""
    return {
        "text": p.text,
        "context": p.context,
        "title": p.title,
        "section": p.section,
        "kind": p.kind,
        "source": source,
        "sources": [source],
        "spans": {source: [p.start, p.end]},
        "content_hash": dedup_key(p.text),
    }


def _detach(store: Store, source: str, ids: set[str]) -> int:
    """Remove `source` from these passages; delete the ones no file holds any more."""
    if not ids:
        return 0
    payloads = store.get(sorted(ids))
    gone, updates = [], {}
    for pid, payload in payloads.items():
        sources = [s for s in payload.get("sources", []) if s != source]
        if not sources:
            gone.append(pid)
        elif len(sources) != len(payload.get("sources", [])):
            spans = {k: v for k, v in payload.get("spans", {}).items() if k != source}
            updates[pid] = {"sources": sources, "spans": spans, "source": sources[0]}
    store.delete(gone)
    if updates:
        store.set_payloads(updates)
    return len(gone)
