"""Crashes and damaged stores, with real processes.

- `rag ingest` (the real CLI, in its own process and RAG_DATA_DIR) is killed with SIGKILL at
  seeded random moments spread over its work (placed relative to its own progress, so a slow
  or busy machine moves the kills with it); the next ingest must end with exactly
  what one clean ingest of the same corpus stores: the same point ids, the same sources per
  point, the same manifest. (tests/test_ingest.py kills at chosen store calls; this kills at
  arbitrary instants, wherever they fall: in the embedding, in a Qdrant write, between two.)
- A damaged index store is reported in one line (at start, or at the first read that reaches
  the damage) that says to run
  `rag ingest --rebuild` (exit 5), and that rebuild leaves the conversation and feedback
  database (RAG_DATA_DIR/rag.sqlite3) alone.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import indexed_copy

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
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        env=rag_env(data),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    app = RagApp(
        load_settings(env={}, expand_query=False, data_dir=data), dense_encoder=dense_encoder
    )
    try:
        store = app.store
        if store.read_config() is None:
            return {}, {}
        ids = sorted(store.all_ids())
        points = {pid: payload["sources"] for pid, payload in store.get(ids).items()}
        manifest = {
            path: dict(entry, ids=sorted(entry["ids"]))
            for path, entry in store.read_manifest().items()
        }
        return points, manifest
    finally:
        app.close()


def recover(data: Path, corpus: Path, dense_encoder):
    """The next, normal ingest (the same code path as `rag ingest`, in this process)."""
    app = RagApp(
        load_settings(env={}, expand_query=False, data_dir=data), dense_encoder=dense_encoder
    )
    try:
        return app.ingest([corpus])
    finally:
        app.close()


@pytest.fixture(scope="module")
def crash_corpus(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("crash") / "corpus"
    build_crash_corpus(corpus)
    return corpus


class WatchedIngest:
    """`rag ingest` in its own process, its stderr on a pseudo-terminal so that its progress bar
    draws; a thread notes when the store's directory appears and when each batch is reported
    written (the bar's file count moves). Kills are placed relative to those moments in the
    same run, so a run that starts slower or faster than the clean one is still killed in the
    same part of its work."""

    COUNT = re.compile(rb"(\d+)/(\d+) \[")

    def __init__(self, data: Path, corpus: Path, *args: str):
        import fcntl
        import pty
        import struct
        import termios

        self.data = data
        master, slave = pty.openpty()
        # A fresh pseudo-terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "ingest", str(corpus), *args],
            env=rag_env(data),
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        self.marker: float | None = None
        self.updates: list[float] = []  # when the count first showed each new value > 0
        self._master = master
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._watch_marker, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self) -> None:
        seen, buf = 0, b""
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            buf = (buf + chunk)[-4096:]
            for m in self.COUNT.finditer(buf):
                n = int(m.group(1))
                if n > seen:
                    seen = n
                    self.updates.append(time.perf_counter() - self.started)
            buf = buf[-64:]

    def _watch_marker(self) -> None:
        marker = self.data / "index"
        while self.proc.poll() is None and self.marker is None:
            if marker.exists():
                self.marker = time.perf_counter() - self.started
            time.sleep(0.02)

    def anchors(self) -> list[float]:
        return ([self.marker] if self.marker is not None else []) + self.updates

    def finish(self, timeout: float = 600) -> tuple[int, bytes]:
        out, _ = self.proc.communicate(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        os.close(self._master)
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def clean(crash_corpus, tmp_path_factory, dense_encoder):
    """One clean `rag ingest` of the corpus, watched: when the store appears, when each batch is
    reported written, when it exits."""
    data = tmp_path_factory.mktemp("clean") / "data"
    run = WatchedIngest(data, crash_corpus, "--json")
    code, out = run.finish()
    total = time.perf_counter() - run.started
    assert code == 0
    points, manifest = state(data, dense_encoder)
    assert len(manifest) == 39 and all(not e["pending_ids"] for e in manifest.values())
    assert run.marker is not None and run.updates, (run.marker, run.updates)
    return {
        "points": points,
        "manifest": manifest,
        "anchors": run.anchors(),
        "total": total,
        "stdout": out.decode(),
    }


def test_crash_corpus_makes_real_embedding_work(clean):
    import json

    report = json.loads(clean["stdout"])
    print(
        f"clean ingest: {clean['total']:.1f} s "
        f"(store opened, batches written at {clean['anchors']}): {report}"
    )
    assert report["files"] == 39 and report["skipped"] == []
    assert report["added"] > 150  # distinct passages embedded
    assert report["duplicates"] > 500  # and many shared between the copies


@pytest.mark.slow
def test_kill_9_at_random_moments_then_ingest_ends_like_a_clean_ingest(
    crash_corpus, clean, tmp_path, dense_encoder
):
    rng = random.Random(SEED)
    # The clean run's work, from the store appearing to its exit, in segments: store opened ->
    # batch 1 written -> ... -> exit. Each kill picks a segment and a point inside it
    # (stratified over the runs, seeded), and lands that far past the same segment's start in
    # its own run: inside an embedding, a Qdrant write, or between two, wherever it falls.
    bounds = clean["anchors"] + [clean["total"]]
    lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    outcomes = []
    for k in range(RUNS):
        position = (k + rng.random()) / RUNS * len(lengths)
        segment, fraction = int(position), position % 1
        data = tmp_path / f"run-{k:02d}"
        run = WatchedIngest(data, crash_corpus)
        killed = False
        while run.proc.poll() is None:
            anchors = run.anchors()
            if len(anchors) > segment:
                due = anchors[segment] + fraction * lengths[segment]
                if time.perf_counter() - run.started >= due:
                    os.kill(run.proc.pid, signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.01)
        code, _ = run.finish(timeout=120)
        finished = not killed or code == 0  # it may exit between the check and the kill
        assert code == (0 if finished else -signal.SIGKILL)
        before_points, before_manifest = state(data, dense_encoder)
        partial = bool(before_points or before_manifest) and (
            before_points != clean["points"] or before_manifest != clean["manifest"]
        )
        report = recover(data, crash_corpus, dense_encoder)
        assert report.skipped == [], (k, report.skipped)
        after_points, after_manifest = state(data, dense_encoder)
        if finished:
            outcome = "finished"
        elif partial:
            outcome = "partial"
        else:
            outcome = "all written, not exited" if before_points else "before any write"
        outcomes.append(
            (segment, round(fraction, 2), outcome, len(before_points), report.added, report.removed)
        )
        assert set(after_points) == set(clean["points"]), (k, segment, outcome)
        for pid, sources in clean["points"].items():
            assert sorted(after_points[pid]) == sorted(sources), (k, segment, pid)
        assert after_manifest == clean["manifest"], (k, segment, outcome)
        again = recover(data, crash_corpus, dense_encoder)  # and it stays settled
        assert (again.added, again.removed, again.unchanged_files) == (0, 0, 39), k
        shutil.rmtree(data)
    print(
        "kill runs (segment, fraction, state at kill, points then, added, removed):",
        *outcomes,
        sep="\n  ",
    )
    # Most kills must land mid-ingest, or the test has not tested recovery.
    assert sum(o[2] == "partial" for o in outcomes) >= RUNS // 2, outcomes


# --- a damaged store ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory, dense_encoder):
    """An indexed copy of the guides, plus a conversation and a feedback record."""
    root = tmp_path_factory.mktemp("damaged")
    made = {}

    def converse(app):
        cid = app.history.new_conversation(title="Who introduced GANs?")
        app.history.add(cid, "user", "Who introduced GANs?")
        mid = app.history.add(
            cid,
            "assistant",
            "Ian Goodfellow, in 2014 [1].",
            {"answer": "Ian Goodfellow, in 2014 [1]."},
        )
        app.history.add_feedback(mid, 1, "Who introduced GANs?", "Ian Goodfellow, in 2014 [1].", [])
        made.update(cid=cid, count=app.store.count())

    corpus, data = indexed_copy(root, dense_encoder, converse)
    cid, count = made["cid"], made["count"]
    return {"corpus": corpus, "data": data, "conversation": cid, "count": count}


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(5).randbytes(max(path.stat().st_size, 4096)))


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


EVERY_COMMAND = ("sources", "search", "ingest", "ask")
READS_PASSAGES = ("search", "ask")
DAMAGE = {
    # what is damaged (a glob under RAG_DATA_DIR/index/rag), how, and which commands must see it:
    # damage to what a shard loads at open shows at once; damage inside a segment's payload
    # pages shows when a read reaches it
    "segment-metadata-garbage": ("passages/segments/*/segment.json", _garbage, EVERY_COMMAND),
    "shard-config-half-written": ("passages/edge_config.json", _truncate_half, EVERY_COMMAND),
    "id-tracker-garbage": (
        "passages/segments/*/mutable_id_tracker.mappings",
        _garbage,
        EVERY_COMMAND,
    ),
    "write-ahead-log-garbage": ("passages/wal/open-1", _garbage, EVERY_COMMAND),
    "manifest-segment-emptied": ("files/segments/*/segment.json", _empty, EVERY_COMMAND),
    "payload-page-garbage": (
        "passages/segments/*/payload_storage/page_0.dat",
        _garbage,
        READS_PASSAGES,
    ),
    "payload-page-emptied": (
        "passages/segments/*/payload_storage/page_0.dat",
        _empty,
        READS_PASSAGES,
    ),
    "manifest-payload-garbage": (
        "files/segments/*/payload_storage/page_0.dat",
        _garbage,
        ("sources", "ingest"),
    ),
}


def damaged_copy(template, tmp_path: Path, kind: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(template["data"], data)
    pattern, damage, _ = DAMAGE[kind]
    targets = list((data / "index" / "rag").glob(pattern))
    assert targets, f"the store has no {pattern}: its layout changed, update DAMAGE"
    for target in targets:
        damage(target)
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
    commands = {
        "sources": ["sources"],
        "search": ["search", "Who introduced GANs?"],
        "ingest": ["ingest", corpus],
        "ask": ["ask", "Who introduced GANs?", "--json"],
    }
    for args in (commands[c] for c in DAMAGE[kind][2]):
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
    for pages in (data / "index" / "rag" / "passages" / "segments").glob(
        "*/payload_storage/page_*.dat"
    ):
        pages.write_bytes(b"")
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
