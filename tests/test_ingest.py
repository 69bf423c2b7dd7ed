"""Ingestion through RagApp.ingest with the real embedding model and the embedded Qdrant:
dedup across guides, incremental re-ingest, changes, deletions, rebuilds, bad files, crash
recovery and the store lock.

Indexing the guides costs a few seconds, so the module indexes them once into a template
and every test starts from its own copy of that index (and a pristine copy of the guides at
the path the index knows them by)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.app import RagApp
from rag.chunking import chunk_document
from rag.errors import BadInput
from rag.loaders import find_files, load
from rag.normalise import dedup_key
from rag.settings import load_settings
from rag.store import point_id
from rag.types import IngestReport

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
TYPES = "corpus/types-of-generative-models.txt"
DIFFERENCES = "corpus/generative-models-differences-and-connections.txt"
CHOOSING = "corpus/choosing-a-generative-model-type.txt"
GAN_EVIDENCE = "Introduced by Ian Goodfellow in 2014"
PINECONE = "Pinecone, FAISS, Milvus, and Weaviate."


# --- helpers -------------------------------------------------------------------------------


def points(app: RagApp) -> dict[str, dict]:
    """Every stored passage: id → payload."""
    return dict(app.store.payloads())


def snapshot(app: RagApp, spans: bool = True) -> dict[str, tuple]:
    """What a correct index must hold, independent of processing order."""
    return {
        pid: (
            p["text"],
            p["kind"],
            tuple(sorted(p["sources"])),
            tuple(sorted((s, tuple(v)) for s, v in p["spans"].items())) if spans else (),
        )
        for pid, p in points(app).items()
    }


def manifest_by_source(app: RagApp) -> dict[str, tuple]:
    return {
        e["source"]: (tuple(sorted(e["ids"])), tuple(e.get("pending_ids", [])))
        for e in app.store.read_manifest().values()
    }


def expected_index(corpus: Path, budget: int = 120, overlap: int = 1) -> dict[str, set[str]]:
    """id → sources, straight from the loader and chunker."""
    files, _ = find_files([corpus])
    out: dict[str, set[str]] = {}
    for f in files:
        for p in chunk_document(load(f), budget, overlap):
            out.setdefault(point_id(dedup_key(p.text)), set()).add(f.source)
    return out


def assert_index_matches_corpus(
    app: RagApp, corpus: Path, budget: int = 120, spans: bool = True
) -> None:
    want = expected_index(corpus, budget)
    got = {pid: set(p["sources"]) for pid, p in points(app).items()}
    assert got == want
    files, _ = find_files([corpus])
    texts = {f.source: load(f).text for f in files}
    for p in points(app).values():
        assert p["source"] == p["sources"][0]
        assert set(p["spans"]) == set(p["sources"])
        if spans:  # spans point into each source's normalised text
            for source, (start, end) in p["spans"].items():
                assert texts[source][start:end] == p["text"], (source, p["text"][:40])


class Counter:
    """Wraps an encoder's `encode` and counts the texts it is asked to embed; calls through."""

    def __init__(self, monkeypatch, encoder):
        self.calls = 0
        self.texts = 0
        real = encoder.encode

        def encode(texts):
            self.calls += 1
            self.texts += len(texts)
            return real(texts)

        monkeypatch.setattr(encoder, "encode", encode)


def rewrite(path: Path, text: str) -> None:
    """Write and make sure the change is visible to a size+mtime check."""
    before = path.stat()
    path.write_text(text, "utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


# --- fixtures ------------------------------------------------------------------------------


@dataclass
class Template:
    corpus: Path
    data: Path
    report: IngestReport


@dataclass
class Indexed:
    app: RagApp
    corpus: Path
    data: Path


@pytest.fixture(scope="module")
def template(tmp_path_factory, dense_encoder) -> Template:
    root = tmp_path_factory.mktemp("ingest-template")
    corpus, data = root / "corpus", root / "data"
    shutil.copytree(CORPUS, corpus)  # copy2 keeps the files' mtimes
    app = RagApp(
        load_settings(env={}, expand_query=False, data_dir=data, corpus=corpus),
        dense_encoder=dense_encoder,
    )
    try:
        report = app.ingest([corpus])
    finally:
        app.close()
    return Template(corpus, data, report)


@pytest.fixture
def indexed(template, tmp_path, make_app) -> Indexed:
    """A private copy of the indexed guides. The guides sit at the template's path (the
    manifest knows them by it), restored to their shipped state for every test."""
    shutil.rmtree(template.corpus)
    shutil.copytree(CORPUS, template.corpus)
    data = tmp_path / "data"
    shutil.copytree(template.data, data)
    app = make_app(data_dir=data, corpus=template.corpus)
    return Indexed(app, template.corpus, data)


# --- a clean ingest ------------------------------------------------------------------------


def test_clean_ingest_stores_what_the_chunker_produces(indexed, template):
    report = template.report
    assert (report.files, report.unchanged_files, report.skipped, report.rebuilt) == (3, 0, [], "")
    assert report.passages == 11 + 39 + 35  # distinct passages per file, summed
    assert report.added == indexed.app.store.count() == len(expected_index(indexed.corpus))
    assert_index_matches_corpus(indexed.app, indexed.corpus)


def test_faq_passages_are_stored_once_with_both_sources(indexed, template):
    stored = points(indexed.app)
    faq = [p for p in stored.values() if p["kind"] == "list_item"]
    assert len(faq) == 25
    for p in faq:
        assert sorted(p["sources"]) == [DIFFERENCES, TYPES]
        assert set(p["spans"]) == {DIFFERENCES, TYPES}
    assert sum(p["text"] == PINECONE for p in stored.values()) == 1
    # the report counts every passage that was not stored again: 25 FAQ items and the
    # shared copyright line
    total = sum(len(chunk_document(load(f))) for f in find_files([indexed.corpus])[0])
    assert template.report.duplicates == total - len(stored) == 26
    assert template.report.added == len(stored)


# --- incremental ---------------------------------------------------------------------------


def test_reingest_of_an_unchanged_corpus_adds_and_embeds_nothing(
    indexed, dense_encoder, monkeypatch
):
    app = indexed.app
    before = snapshot(app)
    dense = Counter(monkeypatch, dense_encoder)
    sparse = Counter(monkeypatch, app.sparse())
    report = app.ingest([indexed.corpus])
    assert (report.added, report.removed, report.unchanged_files, report.files) == (0, 0, 3, 3)
    assert report.passages == 85 and report.rebuilt == ""
    assert (dense.calls, sparse.calls) == (0, 0)
    assert snapshot(app) == before


def test_touched_but_identical_file_embeds_nothing(indexed, dense_encoder, monkeypatch):
    app = indexed.app
    before = snapshot(app)
    path = indexed.corpus / TYPES.split("/")[1]
    rewrite(path, path.read_text("utf-8"))
    dense = Counter(monkeypatch, dense_encoder)
    report = app.ingest([indexed.corpus])
    assert (report.added, report.removed, report.unchanged_files, report.files) == (0, 0, 2, 3)
    assert dense.texts == 0
    assert snapshot(app) == before
    assert app.ingest([indexed.corpus]).unchanged_files == 3  # and now it is recorded


def test_changed_file_is_reindexed(indexed, dense_encoder, monkeypatch):
    app = indexed.app
    path = indexed.corpus / TYPES.split("/")[1]
    text = path.read_text("utf-8")
    assert GAN_EVIDENCE in text
    rewrite(path, text.replace(GAN_EVIDENCE, "Introduced by Ada Quetzalcoatl in 2031"))
    dense = Counter(monkeypatch, dense_encoder)
    report = app.ingest([indexed.corpus])
    assert report.unchanged_files == 2 and report.files == 3
    assert report.added >= 1 and report.removed >= 1
    assert dense.texts == report.added  # only the new passages were embedded
    # (spans: see test_changed_file_updates_the_spans_of_its_unchanged_passages)
    assert_index_matches_corpus(app, indexed.corpus, spans=False)
    assert not any(GAN_EVIDENCE in p["text"] for p in points(app).values())
    hits = app.search("Quetzalcoatl", mode="sparse", top_k=3)
    assert "Introduced by Ada Quetzalcoatl in 2031" in hits[0].text
    assert hits[0].source == TYPES
    assert GAN_EVIDENCE not in " ".join(
        h.text for h in app.search("Who introduced GANs?", top_k=10)
    )
    # the FAQ it shares with another guide is untouched
    faq = [p for p in points(app).values() if p["kind"] == "list_item"]
    assert len(faq) == 25 and all(sorted(p["sources"]) == [DIFFERENCES, TYPES] for p in faq)


def test_changed_file_updates_the_spans_of_its_unchanged_passages(indexed):
    app = indexed.app
    path = indexed.corpus / TYPES.split("/")[1]
    rewrite(
        path,
        path.read_text("utf-8").replace(GAN_EVIDENCE, "Introduced by Ada Quetzalcoatl in 2031"),
    )
    app.ingest([indexed.corpus])
    text = load(next(f for f in find_files([indexed.corpus])[0] if f.source == TYPES)).text
    hit = app.search("Pinecone FAISS Milvus", mode="sparse", top_k=1, sources=[TYPES])[0]
    start, end = points(app)[hit.id]["spans"][TYPES]
    assert text[start:end] == PINECONE
    assert_index_matches_corpus(app, indexed.corpus)


def test_deleted_file_loses_its_passages_but_shared_ones_survive(indexed):
    app = indexed.app
    before = points(app)
    only_types = {pid for pid, p in before.items() if p["sources"] == [TYPES]}
    assert len(only_types) == 35 - 26
    (indexed.corpus / TYPES.split("/")[1]).unlink()
    report = app.ingest([indexed.corpus])
    assert report.removed == len(only_types)
    assert report.files == 2 and report.added == 0
    after = points(app)
    assert set(after) == set(before) - only_types
    assert not any(TYPES in p["sources"] or TYPES in p["spans"] for p in after.values())
    pinecone = next(p for p in after.values() if p["text"] == PINECONE)
    assert (pinecone["sources"], pinecone["source"], list(pinecone["spans"])) == (
        [DIFFERENCES],
        DIFFERENCES,
        [DIFFERENCES],
    )
    assert_index_matches_corpus(app, indexed.corpus)
    assert app.sources() == {CHOOSING: 11, DIFFERENCES: 39}
    hit = app.search("Pinecone FAISS Milvus", mode="sparse", top_k=1)[0]
    assert (hit.text, hit.source, hit.sources) == (PINECONE, DIFFERENCES, [DIFFERENCES])
    assert GAN_EVIDENCE not in " ".join(
        h.text for h in app.search("Who introduced GANs?", top_k=10)
    )


def test_ingesting_one_folder_keeps_files_from_another(indexed, tmp_path):
    app = indexed.app
    other = tmp_path / "other"
    (other).mkdir()
    (other / "notes.md").write_text(
        "# Notes\n\nZebrafish embeddings are a made-up topic.\n", "utf-8"
    )
    app.ingest([other])
    report = app.ingest([indexed.corpus])
    assert report.removed == 0
    assert "other/notes.md" in app.sources()
    assert "Zebrafish" in app.search("Zebrafish", mode="sparse", top_k=1)[0].text


def test_changed_chunk_setting_rebuilds_the_index(indexed, make_app, dense_encoder, monkeypatch):
    indexed.app.close()
    app = make_app(data_dir=indexed.data, corpus=indexed.corpus, chunk_tokens=60)
    dense = Counter(monkeypatch, dense_encoder)
    report = app.ingest([indexed.corpus])
    assert "chunk_tokens" in report.rebuilt
    assert report.unchanged_files == 0 and report.files == 3
    assert dense.texts == report.added == app.store.count()
    assert_index_matches_corpus(app, indexed.corpus, budget=60)
    assert set(points(app)) != set(expected_index(indexed.corpus, 120))
    assert app.store.read_config()["chunk_tokens"] == 60
    again = app.ingest([indexed.corpus])
    assert (again.rebuilt, again.added, again.unchanged_files) == ("", 0, 3)


def test_bm25_length_is_measured_from_the_corpus_and_kept(indexed, make_app, tmp_path):
    from rag.embedding import SparseEncoder

    files, _ = find_files([indexed.corpus])
    texts = [p.search_text for f in files for p in chunk_document(load(f))]
    measured = indexed.app.store.read_config()["bm25_avg_len"]
    assert measured == SparseEncoder().average_length(texts)
    assert 10 < measured < 60  # BM25 tokens of a 120-token passage, stop words left out
    # Another file later is weighed by the same figure, not a new one.
    extra = indexed.corpus / "notes.txt"
    extra.write_text("A very long note. " * 80, "utf-8")
    report = indexed.app.ingest([indexed.corpus])
    assert report.added > 0 and not report.rebuilt
    assert indexed.app.store.read_config()["bm25_avg_len"] == measured


def test_a_bm25_length_given_in_the_settings_wins_and_a_change_rebuilds(indexed, make_app):
    indexed.app.close()
    app = make_app(data_dir=indexed.data, corpus=indexed.corpus, bm25_avg_len=80)
    report = app.ingest([indexed.corpus])
    assert "bm25_avg_len" in report.rebuilt
    assert app.store.read_config()["bm25_avg_len"] == 80


def test_symbols_keep_passages_apart(make_app, tmp_path):
    folder = tmp_path / "lang"
    folder.mkdir()
    (folder / "cpp.txt").write_text("C++ compiles templates ahead of time.\n", "utf-8")
    (folder / "csharp.txt").write_text("C# compiles templates ahead of time.\n", "utf-8")
    (folder / "ne.txt").write_text("The loop runs while a != b holds.\n", "utf-8")
    (folder / "eq.txt").write_text("The loop runs while a == b holds.\n", "utf-8")
    (folder / "ne-copy.txt").write_text("the loop runs while a != b holds\n", "utf-8")
    app = make_app()
    report = app.ingest([folder])
    by_text = {p["text"]: sorted(p["sources"]) for p in points(app).values()}
    assert by_text == {
        "C# compiles templates ahead of time.": ["lang/csharp.txt"],
        "C++ compiles templates ahead of time.": ["lang/cpp.txt"],
        "the loop runs while a != b holds": ["lang/ne-copy.txt", "lang/ne.txt"],
        "The loop runs while a == b holds.": ["lang/eq.txt"],
    }
    assert report.duplicates == 1  # the copy differs only in case and a full stop


# --- bad input -----------------------------------------------------------------------------


def test_bad_files_among_good_ones_are_skipped_and_named(indexed):
    corpus = indexed.corpus
    (corpus / "a-broken.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog garbage \x00\x01 >>\n"
    )
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "picture.txt").write_bytes(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" * 50
    )
    (corpus / "zz-notes.md").write_text(
        "# Notes\n\nQuokka diffusion is a made-up technique.\n", "utf-8"
    )
    report = indexed.app.ingest([corpus])
    reasons = dict(report.skipped)
    assert set(reasons) == {"corpus/a-broken.pdf", "corpus/empty.txt", "corpus/picture.txt"}
    assert reasons["corpus/a-broken.pdf"].startswith("corrupt PDF")
    assert reasons["corpus/empty.txt"] == "empty file"
    assert reasons["corpus/picture.txt"].startswith("binary")
    assert report.files == 4 and report.added == 1
    hits = indexed.app.search("Quokka", mode="sparse", top_k=1)
    assert hits[0].source == "corpus/zz-notes.md"
    assert GAN_EVIDENCE in indexed.app.search("Who introduced GANs?")[0].text
    assert set(indexed.app.sources()) == {CHOOSING, DIFFERENCES, TYPES, "corpus/zz-notes.md"}


def test_a_file_that_turns_bad_loses_its_passages(indexed):
    app = indexed.app
    (indexed.corpus / CHOOSING.split("/")[1]).write_bytes(b"")
    report = app.ingest([indexed.corpus])
    assert report.skipped == [(CHOOSING, "empty file")]
    assert report.removed == 11
    assert not any(CHOOSING in p["sources"] for p in points(app).values())
    assert CHOOSING not in app.sources()


def test_missing_path_raises_bad_input(make_app, tmp_path):
    app = make_app()
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(BadInput) as err:
        app.ingest([CORPUS, missing])
    assert str(missing) in err.value.one_line()
    assert "\n" not in err.value.one_line()
    assert err.value.exit_code == 2
    assert app.store.count() == 0


def test_a_file_reingested_under_another_name_leaves_no_orphans(make_app, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    path = folder / "axolotl.txt"
    path.write_text("Axolotl models are a made-up family of generators.\n", "utf-8")
    (folder / "other.txt").write_text("Another file keeps the folder alive.\n", "utf-8")
    app = make_app()
    app.ingest([path])  # source "axolotl.txt"
    app.ingest([folder])  # the same file, now "notes/axolotl.txt"
    assert app.sources() == {"notes/axolotl.txt": 1, "notes/other.txt": 1}
    path.unlink()
    app.ingest([folder])
    assert [p["sources"] for p in points(app).values() if "Axolotl" in p["text"]] == []


# --- crash recovery ------------------------------------------------------------------------

# Runs an ingest in a child process that SIGKILLs itself at a chosen point: the `nth` call of
# an EdgeStore method (for write_manifest_entry: of the final, non-pending entries), before
# or after it does its work. The child uses small batches, so a small corpus spans several;
# the clean ingest it is compared with uses the default batches.
KILLER = r"""
import os, signal, sys
from pathlib import Path
import rag.ingest
from rag.app import RagApp
from rag.settings import load_settings
from rag.store_edge import EdgeStore

data, corpus, method, nth, when, batch = sys.argv[1:7]
nth, rag.ingest.BATCH_PASSAGES = int(nth), int(batch)
real = getattr(EdgeStore, method)
calls = 0

def wrapped(self, *args, **kwargs):
    global calls
    counted = not (method == "write_manifest_entry" and args[0].get("pending_ids"))
    calls += counted
    if counted and calls == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(self, *args, **kwargs)
    if counted and calls == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return out

setattr(EdgeStore, method, wrapped)
app = RagApp(load_settings(data_dir=data))
app.ingest([Path(corpus)])
"""


def build_big_corpus(dest: Path, copies: int = 4) -> None:
    """`copies` edited copies of each guide; every copy differs from the others in one short
    passage (a table row or a FAQ item)."""
    dest.mkdir(parents=True)
    edits = {
        "choosing-a-generative-model-type": (
            "Interpretability\tLow",
            "Interpretability\tLow (survey {i})",
        ),
        "generative-models-differences-and-connections": (
            PINECONE,
            PINECONE[:-1] + " (edition {i}).",
        ),
        "types-of-generative-models": (PINECONE, PINECONE[:-1] + " (issue {i})."),
    }
    for src in sorted(CORPUS.glob("*.txt")):
        text = src.read_text("utf-8")
        old, new = edits[src.stem]
        for i in range(copies):
            edited = text.replace(old, new.format(i=i), 1)
            assert edited != text
            (dest / f"{src.stem}-{i:02d}.txt").write_text(edited, "utf-8")


@pytest.fixture(scope="module")
def clean_big(tmp_path_factory, dense_encoder):
    """A clean, uninterrupted ingest of the big corpus: what every recovery must end with."""
    root = tmp_path_factory.mktemp("clean-big")
    build_big_corpus(root / "corpus")
    app = RagApp(
        load_settings(env={}, expand_query=False, data_dir=root / "data"),
        dense_encoder=dense_encoder,
    )
    try:
        report = app.ingest([root / "corpus"])
        assert report.files == 12 and report.skipped == []
        yield snapshot(app), manifest_by_source(app)
    finally:
        app.close()


def run_killed_ingest(
    data: Path, corpus: Path, method: str, nth: int, when: str, batch: int = 64
) -> None:
    env = dict(os.environ, RAG_DATA_DIR=str(data))
    env.pop("RAG_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(data), str(corpus), method, str(nth), when, str(batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "nth", "when"),
    [
        # With batches of 64 passages the 12 files go in batches of 5, 2, 2, 2 and 1 files.
        # Batch 2's new passages are stored; the passages it shares with batch 1 are not yet
        # tagged with its sources, and its manifest entries are still pending.
        ("set_payloads", 1, "before"),
        # Batch 3 half finalised: one of its files is final, the other still pending.
        ("write_manifest_entry", 8, "after"),
    ],
)
def test_killed_ingest_is_repaired_by_the_next_run(
    tmp_path, make_app, clean_big, method, nth, when
):
    corpus, data = tmp_path / "big" / "corpus", tmp_path / "data"
    build_big_corpus(corpus)
    run_killed_ingest(data, corpus, method, nth, when)
    want_points, want_manifest = clean_big
    app = make_app(data_dir=data)
    assert 0 < app.store.count()
    assert snapshot(app) != want_points  # killed partway
    assert any(pending for _, pending in manifest_by_source(app).values())
    app.ingest([corpus])
    assert snapshot(app) == want_points
    assert manifest_by_source(app) == want_manifest
    texts = [p["text"] for p in points(app).values()]
    assert len(texts) == len(set(texts))  # no passage stored twice
    again = app.ingest([corpus])
    assert (again.added, again.removed, again.unchanged_files) == (0, 0, 12)


@pytest.mark.slow
def test_killed_update_is_repaired_by_the_next_run(indexed, make_app):
    """A kill while an index is being updated: the changed guide has stale passages to detach,
    the deleted one has passages to drop."""
    corpus = indexed.corpus
    indexed.app.close()
    path = corpus / TYPES.split("/")[1]
    text = path.read_text("utf-8").replace(GAN_EVIDENCE, "Introduced by someone else")
    rewrite(path, text.replace(PINECONE, "Pinecone and FAISS only."))
    (corpus / CHOOSING.split("/")[1]).unlink()
    # The deletion is done, the changed guide's new passages are stored; nothing else is.
    run_killed_ingest(indexed.data, corpus, "upsert", 1, "after")
    app = make_app(data_dir=indexed.data)
    before = {pid: set(p["sources"]) for pid, p in points(app).items()}
    assert before != expected_index(corpus)  # killed partway
    app.ingest([corpus])
    # What a clean ingest stores (test_clean_ingest_stores_what_the_chunker_produces). Spans
    # are left out: a changed file's unchanged passages keep stale spans even without a kill
    # (test_changed_file_updates_the_spans_of_its_unchanged_passages).
    assert_index_matches_corpus(app, corpus, spans=False)
    files, _ = find_files([corpus])
    assert manifest_by_source(app) == {
        f.source: (
            tuple(sorted({point_id(dedup_key(p.text)) for p in chunk_document(load(f))})),
            (),
        )
        for f in files
    }
    assert not any(GAN_EVIDENCE in p["text"] for p in points(app).values())
    pinecone = next(p for p in points(app).values() if p["text"] == PINECONE)
    assert pinecone["sources"] == [DIFFERENCES]


# --- the store lock ------------------------------------------------------------------------


def test_a_second_process_gets_store_locked(indexed):
    app = indexed.app
    assert app.store.count() > 0  # this process holds the embedded store
    env = dict(os.environ, RAG_DATA_DIR=str(indexed.data))
    env.pop("RAG_DEBUG", None)
    cmd = [sys.executable, "-m", "rag.cli", "ingest", str(indexed.corpus)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (
        lines[0].startswith("rag: error: the index at ")
        and "in use by another rag process" in lines[0]
    )
    assert "Traceback" not in proc.stderr
    app.close()  # released: the next process gets in
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "sources", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(__import__("json").loads(proc.stdout)) == {CHOOSING, DIFFERENCES, TYPES}
