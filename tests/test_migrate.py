"""An index written by a release before Qdrant Edge (qdrant-client's local mode under
RAG_DATA_DIR/qdrant, the same two collections) is re-indexed into Edge on first use, with one
line saying so; conversations and feedback stay. The old index is written here by the very
ingest code over qdrant-client's local mode, which is what those releases ran."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.app import RagApp
from rag.history import History
from rag.ingest import ingest
from rag.settings import load_settings
from rag.store_server import ServerStore

ROOT = Path(__file__).resolve().parent.parent


def rag(args: list[str], data: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAG_DATA_DIR=str(data), RAG_LLM="smollm2-135m")
    env.pop("RAG_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def old_install(tmp_path, dense_encoder):
    """A data folder as an older rag left it: its index of two folders, and a conversation."""
    guides, notes = tmp_path / "guides", tmp_path / "notes"
    shutil.copytree(ROOT / "corpus", guides)
    notes.mkdir()
    (notes / "axolotl.txt").write_text("The axolotl regrows lost limbs within weeks.\n", "utf-8")
    data = tmp_path / "data"
    settings = load_settings(env={}, expand_query=False, data_dir=data)
    app = RagApp(settings, dense_encoder=dense_encoder)
    from qdrant_client import QdrantClient

    settings.legacy_index_path.mkdir(parents=True)
    old = ServerStore(
        QdrantClient(path=str(settings.legacy_index_path)), settings.collection, "old"
    )
    try:
        ingest([guides], settings, old, app.dense, app.sparse)
        ingest([notes], settings, old, app.dense, app.sparse)
        cid = app.history.new_conversation(title="Who introduced GANs?")
        app.history.add(cid, "user", "Who introduced GANs?")
    finally:
        old.close()
        app.close()
    return {"data": data, "guides": guides, "notes": notes, "conversation": cid}


def test_first_question_after_upgrade_reindexes_the_old_files_and_says_so(old_install):
    data = old_install["data"]
    proc = rag(
        ["search", "What regrows lost limbs?", "--json", "--no-expand", "--top-k", "3"], data
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (
        len(notes) == 1
        and notes[0].startswith("rag: note: ")
        and "re-indexed its 4 files" in notes[0]
    ), notes
    hits = json.loads(proc.stdout)["passages"]
    assert hits[0]["source"].endswith(
        "axolotl.txt"
    )  # the user's own folder came across, not just the corpus
    assert not (data / "qdrant").exists()  # the old index is gone
    proc = rag(["sources", "--json"], data)
    assert len(json.loads(proc.stdout)) == 4
    again = rag(["search", "What regrows lost limbs?", "--json", "--no-expand"], data)
    assert again.returncode == 0 and "note" not in again.stderr  # said once
    history = History(data / "rag.sqlite3")
    try:
        assert [m["role"] for m in history.messages(old_install["conversation"])] == ["user"]
    finally:
        history.close()


def test_an_ingest_after_upgrade_keeps_the_files_the_old_index_held(old_install, tmp_path):
    data = old_install["data"]
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "okapi.txt").write_text("The okapi is the giraffe's only living relative.\n", "utf-8")
    proc = rag(["ingest", str(extra), "--json"], data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["files"] == 5 and "re-indexed its 4 files" in report["rebuilt"]
    assert "rebuilt the index: the index was written by an older rag" in proc.stderr
    sources = json.loads(rag(["sources", "--json"], data).stdout)
    assert any(s.endswith("okapi.txt") for s in sources) and any(
        s.endswith("axolotl.txt") for s in sources
    )
