"""The embedded store's in-memory sparse index (rag.sparse_index) against qdrant-client's own
local-mode scoring, with the real embedding model, the real BM25 encoder and the shipped
guides: the same ids in the same order with the same scores, before and after the index
changes. Qdrant's path is forced with `store.use_sparse_index = False`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.sparse_index import SparseIndex
from rag.store import SPARSE

ROOT = Path(__file__).resolve().parent.parent
GOLD = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines() if line.strip()]
TYPES = "corpus/types-of-generative-models.txt"
CHOOSING = "corpus/choosing-a-generative-model-type.txt"


@pytest.fixture
def index_calls(monkeypatch) -> list:
    """One entry per search served by a SparseIndex."""
    calls = []
    search = SparseIndex.search

    def counted(self, *args, **kw):
        calls.append(args)
        return search(self, *args, **kw)

    monkeypatch.setattr(SparseIndex, "search", counted)
    return calls


@pytest.fixture(scope="module")
def shared(tmp_path_factory, dense_encoder):
    """The guides indexed once, for the tests that only read."""
    from rag.app import RagApp
    from rag.settings import load_settings

    data = tmp_path_factory.mktemp("sparse_index") / "data"
    app = RagApp(load_settings(env={}, expand_query=False, data_dir=data, corpus=ROOT / "corpus"), dense_encoder=dense_encoder)
    assert app.ingest().files == 3
    yield app
    app.close()


@pytest.fixture
def app(make_app, corpus_copy):
    """A private index of a private copy of the guides, for the tests that change them."""
    app = make_app(corpus=corpus_copy)
    report = app.ingest()
    assert report.files == 3 and report.skipped == []
    return app


def encode(app, questions):
    dense, sparse = app.dense(), app.sparse()
    return [(dense.encode_query(q).tolist(), sparse.encode_query(q)) for q in questions]


def both(store, mode, dv, sv, limit, filters=None):
    """(fast path, Qdrant's path) for one query."""
    store.use_sparse_index = True
    fast = store.query(mode, dv, sv, limit, filters)
    store.use_sparse_index = False
    try:
        slow = store.query(mode, dv, sv, limit, filters)
    finally:
        store.use_sparse_index = True
    return fast, slow


def assert_same(fast, slow):
    assert [p.id for p in fast] == [p.id for p in slow]
    assert [p.score for p in fast] == pytest.approx([p.score for p in slow], abs=1e-6)
    assert [p.payload for p in fast] == [p.payload for p in slow]
    for a, b in zip(fast, slow):
        assert a.dense == pytest.approx(b.dense, abs=1e-6)


@pytest.mark.parametrize("mode", ["sparse", "hybrid"])
@pytest.mark.parametrize("limit", [5, 10])
def test_gold_questions_rank_exactly_as_qdrant(shared, index_calls, mode, limit):
    store, answered = shared.store, 0
    for dv, sv in encode(shared, GOLD):
        fast, slow = both(store, mode, dv, sv, limit)
        assert_same(fast, slow)
        answered += len(fast) == limit
    assert answered > len(GOLD) // 2
    assert store._sparse_index is not None and len(store._sparse_index) == store.count()
    assert len(index_calls) == len(GOLD)


def test_single_term_queries_break_ties_as_qdrant(shared, index_calls):
    """One term per query: many passages score the same, and Qdrant orders equal scores by an
    unstable sort of its slots, which the index must reproduce."""
    store, (dv, _) = shared.store, encode(shared, ["generative models"])[0]
    records, _ = store.client.scroll(store.name, limit=10_000, with_vectors=[SPARSE])
    terms = sorted({t for r in records for t in r.vector[SPARSE].indices})
    tied = 0
    for term in terms[:400]:
        fast, slow = both(store, "sparse", dv, ([term], [1.0]), 10)
        assert_same(fast, slow)
        tied += len({p.score for p in fast}) < len(fast)
    assert tied > 20, "the sample must exercise ties"
    assert len(index_calls) == min(400, len(terms))


def test_deleted_and_changed_sources_follow_the_index(app, corpus_copy, index_calls):
    store = app.store
    queries = encode(app, GOLD[:20] + ["zyxquartz flibbertigibbet"])
    for dv, sv in queries:
        store.query("hybrid", dv, sv, 10)
    built = store._sparse_index
    assert built is not None
    assert store.query("sparse", *queries[-1], 5) == []

    gone = {pid for e in store.read_manifest().values() if e["source"] == TYPES for pid in e["ids"]}
    (corpus_copy / Path(TYPES).name).unlink()
    with open(corpus_copy / Path(CHOOSING).name, "a") as fh:
        fh.write("\n\nThe zyxquartz flibbertigibbet is a made-up model used only by this test.\n")
    report = app.ingest()
    assert report.added >= 1
    alive = store.all_ids()
    gone -= alive  # a passage shared with another guide stays
    assert gone

    for mode in ("sparse", "hybrid"):
        for dv, sv in queries:
            fast, slow = both(store, mode, dv, sv, 10)
            assert_same(fast, slow)
            assert not {p.id for p in fast} & gone
            assert {p.id for p in fast} <= alive
    assert store._sparse_index is not built
    new = store.query("sparse", *queries[-1], 5)
    assert new and "zyxquartz" in new[0].payload["text"]

    # A delete straight through the store, with the index already built.
    top = store.query("sparse", *queries[0], 5)[0].id
    store.delete([top])
    for mode in ("sparse", "hybrid"):
        fast, slow = both(store, mode, *queries[0], 10)
        assert_same(fast, slow)
        assert top not in {p.id for p in fast}


def test_rebuilt_index_is_read_afresh(app, index_calls):
    store = app.store
    (dv, sv), = encode(app, ["How do GANs and VAEs differ in training?"])
    before = store.query("hybrid", dv, sv, 5)
    app.ingest(rebuild=True)
    fast, slow = both(store, "hybrid", dv, sv, 5)
    assert_same(fast, slow)
    assert [p.id for p in fast] == [p.id for p in before]
    assert index_calls


def test_empty_sparse_query(shared, index_calls):
    store = shared.store
    (dv, _), = encode(shared, ["What are the limitations of VAEs?"])
    for empty in (([], []), None):
        assert store.query("sparse", dv, empty, 5) == []
        fast, slow = both(store, "hybrid", dv, empty, 5)
        assert len(fast) == 5
        assert_same(fast, slow)
    assert index_calls == []  # no terms, nothing to score


def test_filtered_query_goes_to_qdrant(shared, index_calls):
    store = shared.store
    for (dv, sv), q in zip(encode(shared, GOLD[:10]), GOLD[:10]):
        for mode in ("sparse", "hybrid"):
            fast, slow = both(store, mode, dv, sv, 5, {"sources": [CHOOSING]})
            assert_same(fast, slow)
            assert all(CHOOSING in p.payload["sources"] for p in fast), q
    assert index_calls == []
