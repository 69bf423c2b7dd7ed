"""An index written before Qdrant Edge (qdrant-client's local mode, RAG_DATA_DIR/qdrant) is
re-indexed once: its manifest names the files it held, those files are ingested into the Edge
index, and the old collections are removed. Conversations and feedback live in rag.sqlite3
and are not touched."""

from __future__ import annotations

import shutil
from pathlib import Path

from rag.settings import Settings


def _legacy_folders(settings: Settings) -> list[Path]:
    base = settings.legacy_index_path / "collection"
    return [base / settings.collection, base / f"{settings.collection}_files"]


def legacy_files(settings: Settings) -> list[Path] | None:
    """The files the old index of this collection held (those still on disk), or None when
    there is no old index to migrate."""
    if settings.qdrant_url or not (_legacy_folders(settings)[1] / "storage.sqlite").exists():
        return None
    from qdrant_client import QdrantClient

    paths: list[Path] = []
    try:
        client = QdrantClient(path=str(settings.legacy_index_path))
    except Exception:
        return []  # unreadable or held: nothing to carry over, the new index starts empty
    try:
        offset = None
        while True:
            records, offset = client.scroll(
                f"{settings.collection}_files", limit=1000, offset=offset, with_payload=True
            )
            for rec in records:
                path = (rec.payload or {}).get("path")
                if path and Path(path).exists():
                    paths.append(Path(path))
            if offset is None:
                break
    except Exception:
        return []
    finally:
        client.close()
    return sorted(paths)


def remove_legacy(settings: Settings) -> None:
    for folder in _legacy_folders(settings):
        shutil.rmtree(folder, ignore_errors=True)
    root = settings.legacy_index_path
    collections = root / "collection"
    if collections.is_dir() and not any(collections.iterdir()):
        shutil.rmtree(root, ignore_errors=True)


def migration_note(count: int) -> str:
    return (
        "the index was written by an older rag (qdrant-client local mode); "
        f"re-indexed its {count} files into Qdrant Edge"
    )
