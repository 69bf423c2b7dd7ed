"""Crashes and damaged stores, with real processes.

- `rag ingest` (the real CLI, in its own process and RAG_DATA_DIR) is killed with SIGKILL at
  seeded random moments spread over a measured ingest; the next ingest must end with exactly
  what one clean ingest of the same corpus stores: the same point ids, the same sources per
  point, the same manifest. (tests/test_ingest.py kills at chosen store calls; this kills at
  arbitrary instants, wherever they fall: in the embedding, in a Qdrant write, between two.)
- A damaged index store is reported at start in one line that says to run
  `rag ingest --rebuild` (exit 5), and that rebuild leaves the conversation and feedback
  database (RAG_DATA_DIR/rag.sqlite3) alone.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.app import RagApp
from rag.history import History
from rag.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
RUNS = 10
SEED = 20241123


def rag_env(data: Path, **extra) -> dict:
    env = dict(os.environ, RAG_DATA_DIR=str(data), RAG_LLM="smollm2-135m", **extra)
    env.pop("RAG_DEBUG", None)
    return env


def rag(args: list[str], data: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env=rag_env(data),
                          capture_output=True, text=True, timeout=timeout)


def build_crash_corpus(dest: Path, copies: int = 13) -> None:
    """`copies` edited copies of each guide (39 files). Every third long paragraph (line) of a
    copy gains a sentence of its own, so each file brings passages no other file has (real
    embedding work) while sharing most with the others (real deduplication)."""
    dest.mkdir(parents=True)
    for src in sorted(CORPUS.glob("*.txt")):
        paragraphs = src.read_text("utf-8").split("\n")
        for i in range(copies):
            out = []
            for j, p in enumerate(paragraphs):
                if (j + i) % 3 == 0 and len(p) > 200 and "\t" not in p and p.rstrip().endswith("."):
                    p = p.rstrip() + f" Revision {i}.{j} of this guide keeps this paragraph."
                out.append(p)
            (dest / f"{src.stem}-{i:02d}.txt").write_text("\n".join(out), "utf-8")


def state(data: Path, dense_encoder) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """(point id → its sources, manifest path → entry) of the index under `data`."""
    app = RagApp(load_settings(env={}, expand_query=False, data_dir=data), dense_encoder=dense_encoder)
    try:
        store = app.store
        if store.read_config() is None:
            return {}, {}
        ids = sorted(store.all_ids())
        points = {pid: payload["sources"] for pid, payload in store.get(ids).items()}
        manifest = {path: dict(entry, ids=sorted(entry["ids"])) for path, entry in store.read_manifest().items()}
        return points, manifest
    finally:
        app.close()


def recover(data: Path, corpus: Path, dense_encoder):
    """The next, normal ingest (the same code path as `rag ingest`, in this process)."""
    app = RagApp(load_settings(env={}, expand_query=False, data_dir=data), dense_encoder=dense_encoder)
    try:
        return app.ingest([corpus])
    finally:
        app.close()


@pytest.fixture(scope="module")
def crash_corpus(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("crash") / "corpus"
    build_crash_corpus(corpus)
    return corpus


@pytest.fixture(scope="module")
def clean(crash_corpus, tmp_path_factory, dense_encoder):
    """One clean `rag ingest` of the corpus, timed: when the store's collections appear (the
    process has started and loaded its model) and when it exits."""
    data = tmp_path_factory.mktemp("clean") / "data"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(crash_corpus), "--json"],
                            env=rag_env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = data / "qdrant" / "collection"
    first_write = None
    while proc.poll() is None:
        if first_write is None and marker.exists():
            first_write = time.perf_counter() - started
        time.sleep(0.05)
    total = time.perf_counter() - started
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    points, manifest = state(data, dense_encoder)
    assert len(manifest) == 39 and all(not e["pending_ids"] for e in manifest.values())
    return {"points": points, "manifest": manifest, "first_write": first_write or 0.0, "total": total,
            "stdout": out}


def test_crash_corpus_makes_real_embedding_work(clean):
    import json

    report = json.loads(clean["stdout"])
    print(f"clean ingest: {clean['total']:.1f} s (store opened at {clean['first_write']:.1f} s): {report}")
    assert report["files"] == 39 and report["skipped"] == []
    assert report["added"] > 150  # distinct passages embedded
    assert report["duplicates"] > 500  # and many shared between the copies


@pytest.mark.slow
def test_kill_9_at_random_moments_then_ingest_ends_like_a_clean_ingest(crash_corpus, clean, tmp_path, dense_encoder):
    rng = random.Random(SEED)
    start, end = 0.8 * clean["first_write"], clean["total"]
    # Stratified: one delay drawn in each of RUNS equal slices of the ingest, so the kills
    # cover it from start to end whatever the seed.
    delays = [start + (end - start) * (k + rng.random()) / RUNS for k in range(RUNS)]
    outcomes = []
    for k, delay in enumerate(delays):
        data = tmp_path / f"run-{k:02d}"
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(crash_corpus)],
                                env=rag_env(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=delay)
            finished = True  # it beat the kill (the machine was fast this time)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            finished = False
        _, err = proc.communicate(timeout=120)
        if not finished and proc.returncode == 0:
            finished = True  # it exited between the timeout and the kill
        if finished:
            assert proc.returncode == 0, err.decode()[-2000:]
        else:
            assert proc.returncode == -signal.SIGKILL
        before_points, before_manifest = state(data, dense_encoder)
        partial = bool(before_points or before_manifest) and (
            before_points != clean["points"] or before_manifest != clean["manifest"])
        report = recover(data, crash_corpus, dense_encoder)
        assert report.skipped == [], (k, report.skipped)
        after_points, after_manifest = state(data, dense_encoder)
        outcome = "finished" if finished else ("partial" if partial else "before any write")
        outcomes.append((round(delay, 1), outcome, len(before_points), report.added, report.removed))
        assert set(after_points) == set(clean["points"]), (k, delay, outcome)
        for pid, sources in clean["points"].items():
            assert sorted(after_points[pid]) == sorted(sources), (k, delay, pid)
        assert after_manifest == clean["manifest"], (k, delay, outcome)
        again = recover(data, crash_corpus, dense_encoder)  # and it stays settled
        assert (again.added, again.removed, again.unchanged_files) == (0, 0, 39), (k, delay)
        shutil.rmtree(data)
    print("kill runs (delay s, state at kill, points then, added, removed):", *outcomes, sep="\n  ")
    assert sum(o[1] == "partial" for o in outcomes) >= RUNS // 2, outcomes


# --- a damaged store ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory, dense_encoder):
    """An indexed copy of the guides, plus a conversation and a feedback record."""
    root = tmp_path_factory.mktemp("damaged")
    corpus, data = root / "corpus", root / "data"
    shutil.copytree(CORPUS, corpus)
    app = RagApp(load_settings(env={}, expand_query=False, data_dir=data, corpus=corpus), dense_encoder=dense_encoder)
    try:
        app.ingest([corpus])
        cid = app.history.new_conversation(title="Who introduced GANs?")
        app.history.add(cid, "user", "Who introduced GANs?")
        mid = app.history.add(cid, "assistant", "Ian Goodfellow, in 2014 [1].", {"answer": "Ian Goodfellow, in 2014 [1]."})
        app.history.add_feedback(mid, 1, "Who introduced GANs?", "Ian Goodfellow, in 2014 [1].", [])
        count = app.store.count()
    finally:
        app.close()
    return {"corpus": corpus, "data": data, "conversation": cid, "count": count}


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(5).randbytes(64 * 1024))


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _bad_blob(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        (key,) = db.execute("SELECT id FROM points LIMIT 1").fetchone()
        db.execute("UPDATE points SET point = ? WHERE id = ?", (b"\x80\x04not a pickle", key))
    db.close()


def _half_meta(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    # what is damaged (under RAG_DATA_DIR/qdrant), and how
    "passages-garbage": ("collection/rag/storage.sqlite", _garbage),
    "passages-half-written": ("collection/rag/storage.sqlite", _truncate_half),
    "passages-bad-record": ("collection/rag/storage.sqlite", _bad_blob),
    "manifest-garbage": ("collection/rag_files/storage.sqlite", _garbage),
    "manifest-half-written": ("collection/rag_files/storage.sqlite", _truncate_half),
    "meta-half-written": ("meta.json", _half_meta),
}


def damaged_copy(template, tmp_path: Path, kind: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(template["data"], data)
    rel, damage = DAMAGE[kind]
    damage(data / "qdrant" / rel)
    return data


def assert_corrupt_index_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 5, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("rag: error: ") and "rag ingest --rebuild" in lines[0]


def assert_history_intact(data: Path, template) -> None:
    history = History(data / "rag.sqlite3")
    try:
        turns = history.messages(template["conversation"])
        assert [t["role"] for t in turns] == ["user", "assistant"]
        assert turns[1]["payload"] == {"answer": "Ian Goodfellow, in 2014 [1]."}
        assert [f["rating"] for f in history.feedback()] == [1]
    finally:
        history.close()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_store_is_reported_at_start_and_rebuild_repairs_it(template, tmp_path, kind):
    data = damaged_copy(template, tmp_path, kind)
    corpus = str(template["corpus"])
    for args in (["sources"], ["search", "Who introduced GANs?"], ["ingest", corpus],
                 ["ask", "Who introduced GANs?", "--json"]):
        started = time.perf_counter()
        proc = rag(args, data)
        assert_corrupt_index_error(proc)
        assert proc.stdout == ""
        assert time.perf_counter() - started < 120, args
    proc = rag(["ingest", corpus, "--rebuild", "--json"], data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = rag(["search", "Who introduced GANs?", "--json", "--top-k", "3"], data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Introduced by Ian Goodfellow in 2014" in proc.stdout
    assert_history_intact(data, template)


def test_rebuild_of_a_healthy_index_keeps_conversations_and_feedback(template, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(template["data"], data)
    proc = rag(["ingest", str(template["corpus"]), "--rebuild", "--json"], data)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rebuilt the index" in proc.stderr
    assert_history_intact(data, template)
    assert (data / "rag.sqlite3").exists()


def test_zero_length_passage_store_is_not_silently_empty(template, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(template["data"], data)
    (data / "qdrant" / "collection" / "rag" / "storage.sqlite").write_bytes(b"")
    proc = rag(["ingest", str(template["corpus"]), "--json"], data)
    if proc.returncode == 5:  # detected: fine
        assert_corrupt_index_error(proc)
        return
    assert proc.returncode == 0, proc.stderr[-2000:]
    app = RagApp(load_settings(env={}, data_dir=data))
    try:
        assert app.store.count() == template["count"], "the ingest left the index empty"
    finally:
        app.close()
