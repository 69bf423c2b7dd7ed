"""Concurrency, with real processes and threads.

- The embedded Qdrant admits one process per folder. While a process that is not a server
  holds it (a bare `python -c` holder), `rag ingest`, `rag ask`, `rag search` and `rag sources`
  fail at once with exit 4 and one line saying what to do; never a traceback about a lock.
  A holder killed with SIGKILL leaves no stale lock behind.
- While `rag ui` holds it, those commands go through its API instead (tests/test_serve.py
  compares their output with a run of their own); `rag eval`, which always runs in its own
  process, is told the index is in use.
- One process, one RagApp, many threads at once (what the UI does with several users):
  ingest + ask + search + sources together lose nothing and do not crash.
- eval/load.py, run short against a real `rag ui`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, indexed_copy

from rag.app import RagApp
from rag.policy import REFUSAL
from rag.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
FAIL_FAST_S = 30


def rag_env(data: Path, **extra) -> dict:
    env = dict(os.environ, RAG_DATA_DIR=str(data), RAG_LLM="smollm2-135m", **extra)
    env.pop("RAG_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def indexed_data(tmp_path_factory, dense_encoder) -> dict:
    """An index of the guides to copy from."""
    root = tmp_path_factory.mktemp("conc-template")
    corpus, data = indexed_copy(root, dense_encoder)
    return {"corpus": corpus, "data": data}


HOLDER = r"""
import sys, time
from rag.app import RagApp
from rag.settings import load_settings
app = RagApp(load_settings(data_dir=sys.argv[1]))
print(app.store.count(), flush=True)   # the store is open: this process holds the folder
time.sleep(600)
"""


@pytest.fixture
def holder(indexed_data, tmp_path):
    """A separate process holding the embedded store of a copy of the index."""
    data = tmp_path / "data"
    shutil.copytree(indexed_data["data"], data)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data)],
        env=rag_env(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip().isdigit() and int(line) > 0, (
        proc.stderr.read()[-2000:] if proc.poll() is not None else line
    )
    yield {"proc": proc, "data": data, "corpus": indexed_data["corpus"]}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


COMMANDS = {
    "ingest": lambda corpus: ["ingest", str(corpus)],
    "ask": lambda corpus: ["ask", "Who introduced GANs?"],
    "ask-json": lambda corpus: ["ask", "Who introduced GANs?", "--json"],
    "search": lambda corpus: ["search", "Who introduced GANs?"],
    "sources": lambda corpus: ["sources"],
    "ingest-rebuild": lambda corpus: ["ingest", str(corpus), "--rebuild"],
}


def assert_store_locked(proc: subprocess.CompletedProcess, elapsed: float) -> str:
    assert proc.returncode == 4, (proc.returncode, proc.stderr[-2000:])
    assert elapsed < FAIL_FAST_S, f"took {elapsed:.1f} s to say the store is busy"
    assert "Traceback" not in proc.stderr and "portalocker" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    line = lines[0]
    assert line.startswith("rag: error: ") and "in use by another rag process" in line
    # says what to do about it
    assert "rag serve" in line and "stop the other process" in line, line
    assert proc.stdout == ""
    return line


def run_rag(
    args: list[str], data: Path, timeout: int = 300
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        env=rag_env(data),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.perf_counter() - started


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "ingest-rebuild"])
def test_a_held_store_fails_other_processes_at_once(holder, command):
    proc, elapsed = run_rag(COMMANDS[command](holder["corpus"]), holder["data"])
    assert_store_locked(proc, elapsed)
    assert holder["proc"].poll() is None  # the holder is unharmed


def test_a_rebuild_refused_for_a_held_store_deletes_nothing(holder):
    """`--rebuild` must not wipe a folder another process is using."""
    before = sorted(p.relative_to(holder["data"]) for p in (holder["data"] / "index").rglob("*"))
    assert before
    proc, elapsed = run_rag(COMMANDS["ingest-rebuild"](holder["corpus"]), holder["data"])
    assert_store_locked(proc, elapsed)
    after = sorted(p.relative_to(holder["data"]) for p in (holder["data"] / "index").rglob("*"))
    assert after == before


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(holder):
    holder["proc"].send_signal(signal.SIGKILL)
    holder["proc"].wait(timeout=30)
    proc, _ = run_rag(["sources", "--json"], holder["data"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)) == 3


def test_conversation_history_stays_usable_while_the_store_is_held(holder):
    """`rag chat --list` needs only the conversation database, not the index."""
    proc, elapsed = run_rag(["chat", "--list"], holder["data"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert elapsed < FAIL_FAST_S * 2


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not come up in {timeout} s")


def test_with_rag_ui_holding_the_store_others_go_through_it(indexed_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(indexed_data["data"], data)
    port = free_port()
    log = open(tmp_path / "ui.log", "w")
    ui = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ui", "--port", str(port), "--model", "smollm2-135m"],
        env=rag_env(data),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", ui, timeout=300)
        assert (data / "server.json").exists()
        for command in ("ingest", "search", "sources"):
            proc, _ = run_rag(COMMANDS[command](indexed_data["corpus"]), data)
            assert proc.returncode == 0, (command, proc.stderr[-2000:])
            assert proc.stdout.strip() and "Traceback" not in proc.stderr
        # eval opens the index itself, whatever runs: it is told who holds it
        proc, elapsed = run_rag(
            ["eval", "--retrieval-only", "--limit", "1", "--out", str(tmp_path / "eval")], data
        )
        line = assert_store_locked(proc, elapsed)
        assert "rag ui" in line  # names the likely holder
        assert ui.poll() is None
    finally:
        # SIGTERM, not SIGINT: a shell that starts the suite in the background leaves SIGINT
        # ignored in its children, and `rag ui` stops cleanly on either.
        ui.send_signal(signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ui.kill()
            ui.wait()
        log.close()
    # stopped: the folder is free again, and no server.json sends commands to a server that is gone
    assert not (data / "server.json").exists()
    proc, _ = run_rag(["sources", "--json"], data)
    assert proc.returncode == 0, proc.stderr[-2000:] + (tmp_path / "ui.log").read_text()[-2000:]


# --- many threads, one app --------------------------------------------------------------------

QUESTIONS = [
    "Who introduced GANs, and when?",
    "What are the limitations of VAEs?",
    "How do diffusion models generate data?",
    "What does LSTM stand for?",
    "Which vector databases are popular?",
    "What is the capital of Australia?",
]
NEW_DOCS = {
    f"made-up-{k}.txt": f"The {word} model is a made-up generator that draws {thing}.\n"
    for k, (word, thing) in enumerate(
        [
            ("Zephyrnet", "kites"),
            ("Quillotron", "maps"),
            ("Mossgrid", "ferns"),
            ("Tarnwing", "owls"),
        ]
    )
}


def index_state(app: RagApp) -> tuple[dict, dict]:
    ids = sorted(app.store.all_ids())
    points = {pid: sorted(p["sources"]) for pid, p in app.store.get(ids).items()}
    manifest = {
        e["source"]: (sorted(e["ids"]), e.get("pending_ids", []))
        for e in app.store.read_manifest().values()
    }
    return points, manifest


def test_threads_sharing_one_app_lose_nothing(tmp_path, dense_encoder, small_llm):
    corpus, data = tmp_path / "corpus", tmp_path / "data"
    shutil.copytree(CORPUS, corpus)
    app = RagApp(
        load_settings(env={}, data_dir=data, corpus=corpus),
        dense_encoder=dense_encoder,
        llm=small_llm,
    )
    errors: list[str] = []
    answers: dict[str, list] = {}
    searches: list[int] = []
    ingests: list = []
    barrier = threading.Barrier(8)

    def guard(fn):
        def run(*args):
            try:
                barrier.wait(timeout=120)
                fn(*args)
            except Exception:
                errors.append(traceback.format_exc())

        return run

    @guard
    def ingester():
        # Documents arrive one by one while others ask, as with uploads in the UI.
        for name, text in NEW_DOCS.items():
            (corpus / name).write_text(text, "utf-8")
            ingests.append(app.ingest([corpus]))

    @guard
    def asker(n: int):
        cid = app.history.new_conversation(title=f"thread {n}")
        got = []
        for q in QUESTIONS[n::2][:3]:
            got.append(app.ask(q, conversation_id=cid))
        answers[cid] = got

    @guard
    def searcher(n: int):
        rng = random.Random(n)
        for _ in range(15):
            q = rng.choice(QUESTIONS + [f"What is the {w}?" for w in ("Zephyrnet", "Mossgrid")])
            hits = app.search(
                q, mode=rng.choice(["hybrid", "dense", "sparse"]), top_k=rng.randint(1, 8)
            )
            assert all(h.text for h in hits)
            searches.append(len(hits))

    @guard
    def lister():
        # The first question indexes the corpus; the lists are read from then on (during an
        # ingest a search sees the index as it stands, so a first one shows it filling up).
        app.ensure_index()
        for _ in range(20):
            assert len(app.sources()) >= 3
            app.history.conversations()
            time.sleep(0.2)

    threads = [
        threading.Thread(target=ingester),
        threading.Thread(target=asker, args=(0,)),
        threading.Thread(target=asker, args=(1,)),
        threading.Thread(target=searcher, args=(1,)),
        threading.Thread(target=searcher, args=(2,)),
        threading.Thread(target=searcher, args=(3,)),
        threading.Thread(target=lister),
    ]
    # the eighth party: the test thread asks through the stream API meanwhile
    for t in threads:
        t.start()
    barrier.wait(timeout=120)
    streamed = [e for e in app.ask_stream("What are GANs?") if e.kind == "done"]
    for t in threads:
        t.join(timeout=1200)
    try:
        assert not any(t.is_alive() for t in threads), "a thread hangs"
        assert errors == [], "\n".join(errors)
        assert len(streamed) == 1
        # every question answered, every turn stored
        assert len(answers) == 2 and all(len(a) == 3 for a in answers.values())
        for cid, got in answers.items():
            for answer in got:
                assert answer.answer.strip()
                if answer.abstained:
                    assert answer.answer == REFUSAL
            turns = app.history.messages(cid)
            assert [t["role"] for t in turns] == ["user", "assistant"] * 3
            assert [t["content"] for t in turns[::2]] == [a.question for a in got]
        assert len(searches) == 45
        assert len(ingests) == len(NEW_DOCS)
        # every document that arrived is indexed, and the index is what a clean ingest gives
        for name, text in NEW_DOCS.items():
            word = text.split()[1]
            hits = app.search(f"What is the {word} model?", mode="sparse", top_k=3)
            assert hits and hits[0].source == f"corpus/{name}", (
                name,
                [(h.source, h.text[:40]) for h in hits],
            )
        got_state = index_state(app)
    finally:
        app.close()
    clean = RagApp(
        load_settings(env={}, expand_query=False, data_dir=tmp_path / "clean", corpus=corpus),
        dense_encoder=dense_encoder,
    )
    try:
        clean.ingest([corpus])
        assert got_state == index_state(clean)
    finally:
        clean.close()


def test_threads_asking_at_once_get_their_own_answers(tmp_path, dense_encoder, small_llm):
    """Answers are not mixed between threads: each carries its own question and passages."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    app = RagApp(
        load_settings(env={}, data_dir=tmp_path / "data", corpus=corpus),
        dense_encoder=dense_encoder,
        llm=small_llm,
    )
    app.ensure_index()
    results: dict[str, object] = {}
    errors: list[str] = []
    barrier = threading.Barrier(len(QUESTIONS))

    def one(q: str) -> None:
        try:
            barrier.wait(timeout=60)
            results[q] = app.ask(q)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=one, args=(q,)) for q in QUESTIONS]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1200)
        assert errors == [], "\n".join(errors)
        assert set(results) == set(QUESTIONS)
        for q, answer in results.items():
            assert answer.question == q
            alone = app.search(q)
            assert [h.id for h in answer.passages] == [h.id for h in alone]
    finally:
        app.close()


# --- the load test -----------------------------------------------------------------------------


@pytest.mark.slow
def test_load_script_short_run(tmp_path):
    out = tmp_path / "load.json"
    cmd = [
        sys.executable,
        str(ROOT / "eval" / "load.py"),
        "--users",
        "4",
        "--seconds",
        "40",
        "--model",
        "smollm2-135m",
        "--data-dir",
        str(tmp_path / "data"),
        "--json",
        str(out),
    ]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env=rag_env(tmp_path / "data"), capture_output=True, text=True, timeout=1500
    )
    elapsed = time.perf_counter() - started
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == 0, report["error_samples"]
    assert report["served"] > 0
    assert (
        report["latency_s"]["p50"] > 0 and report["latency_s"]["p95"] >= report["latency_s"]["p50"]
    )
    assert report["rss_mb"]["start"] > 0 and report["rss_mb"]["end"] > 0
    assert "growth_pct" in report["rss_mb"]
    # Every user's place in the one model's line is reported; four users share it, so some
    # question waited behind another.
    places = report["queue_place"]
    assert set(places["by_user"]) == {"0", "1", "2", "3"}
    assert places["max"] >= 2 and "queue place" in proc.stdout
    # it stops by itself: 40 s of load, plus start-up and the grace for answers in flight
    assert elapsed < 40 + report["config"]["grace_s"] + report["startup_s"] + 120


# --- a damaged store held by another process -----------------------------------------------------
# A folder that another process holds and that reads as damaged (a half-written edge_config.json,
# a shard being replaced) must say "in use", not advise `rag ingest --rebuild`: --rebuild deletes
# a store it judges damaged, and would delete it from under the running process.
# Qdrant Edge reads a shard's edge_config.json before it takes the shard's WAL lock, so
# rag/store_edge.py takes a lock of its own before it reads anything.


def _half_write_config(data: Path) -> None:
    config = data / "index" / "rag" / "files" / "edge_config.json"
    raw = config.read_bytes()
    config.write_bytes(raw[: len(raw) // 2])


def test_a_held_store_that_reads_as_damaged_says_in_use_not_rebuild(holder):
    _half_write_config(holder["data"])
    proc, elapsed = run_rag(COMMANDS["ingest"](holder["corpus"]), holder["data"])
    assert_store_locked(proc, elapsed)


def test_rebuild_never_deletes_a_store_another_process_holds(holder):
    _half_write_config(holder["data"])
    passages = holder["data"] / "index" / "rag" / "passages" / "edge_config.json"
    inode = passages.stat().st_ino
    proc, elapsed = run_rag(COMMANDS["ingest-rebuild"](holder["corpus"]), holder["data"])
    assert holder["proc"].poll() is None
    assert passages.exists() and passages.stat().st_ino == inode, "the held store was deleted"
    assert_store_locked(proc, elapsed)


def test_questions_are_answered_while_an_ingest_runs(tmp_path, dense_encoder, monkeypatch):
    """An ingest holds the store per call, not for its whole run: searches from other threads
    are answered from the index as it stands while a large manual is being embedded."""
    app = RagApp(
        load_settings(env={}, data_dir=tmp_path / "data", corpus=CORPUS, expand_query=False),
        dense_encoder=dense_encoder,
    )
    try:
        app.ingest([CORPUS])
        manual = tmp_path / "manual"
        shutil.copytree(ROOT / "eval" / "corpora" / "bash", manual)
        started = threading.Event()
        failures: list[BaseException] = []
        encode = dense_encoder.encode

        def encode_and_signal(texts):
            if len(texts) > 100:  # the manual's passages, not a question
                started.set()
            return encode(texts)

        monkeypatch.setattr(dense_encoder, "encode", encode_and_signal)

        def ingest() -> None:
            try:
                app.ingest([CORPUS, manual])
            except BaseException as exc:  # noqa: BLE001 (reported below)
                failures.append(exc)

        worker = threading.Thread(target=ingest)
        worker.start()
        started.wait(120)
        answered_during = 0
        for _ in range(5):
            hits = app.search("Who introduced GANs?", top_k=3)
            assert any("Goodfellow" in h.text for h in hits)
            answered_during += worker.is_alive()
        worker.join(600)
        assert not failures, failures
        assert answered_during == 5  # none of them waited for the ingest to end
        assert "manual/bashref.html" in app.sources()
    finally:
        app.close()


def test_the_page_indexer_runs_once_more_for_a_change_made_during_a_run(tmp_path, dense_encoder):
    from rag.ui.indexing import BackgroundIndexer

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    app = RagApp(
        load_settings(env={}, data_dir=tmp_path / "data", corpus=corpus, expand_query=False),
        dense_encoder=dense_encoder,
    )
    try:
        indexer = BackgroundIndexer(app, corpus)
        indexer.request()
        # Written while the first run is under way: the run may or may not have read it.
        (corpus / "late.txt").write_text("The Quokkanet model counts wallabies.\n", "utf-8")
        indexer.request()
        assert indexer.wait(300)
        assert not indexer.state.running and not indexer.state.error
        assert indexer.state.runs == 1  # the second request joined the first run
        assert "corpus/late.txt" in app.sources()
        assert "passages" in indexer.state.last
    finally:
        app.close()
