"""Retrieval over the three shipped guides, through RagApp.search (what `rag search` runs),
with the real embedding model and the embedded Qdrant. The guides are indexed once for the
module; every test here only reads the index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.app import RagApp
from rag.errors import BadInput
from rag.loaders import find_files, load
from rag.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
TYPES = "corpus/types-of-generative-models.txt"
DIFFERENCES = "corpus/generative-models-differences-and-connections.txt"
CHOOSING = "corpus/choosing-a-generative-model-type.txt"
GAN_EVIDENCE = "Introduced by Ian Goodfellow in 2014"


@pytest.fixture(scope="module")
def app(tmp_path_factory, dense_encoder):
    data = tmp_path_factory.mktemp("retrieval") / "data"
    app = RagApp(load_settings(env={}, data_dir=data, corpus=CORPUS), dense_encoder=dense_encoder)
    report = app.ingest()
    assert report.files == 3 and report.skipped == []
    yield app
    app.close()


@pytest.fixture(scope="module")
def doc_texts() -> dict[str, str]:
    files, _ = find_files([CORPUS])
    return {f.source: load(f).text for f in files}


@pytest.fixture(scope="module")
def faq(doc_texts) -> set[str]:
    lines = doc_texts[TYPES].splitlines()
    start = lines.index("Sequence of prompts stored as linked records or documents.")
    return set(lines[start : start + 25])


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


# --- the three modes -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_each_mode_returns_ranked_scored_verbatim_hits(app, doc_texts, mode):
    hits = app.search("How do GANs and VAEs differ in training?", mode=mode, top_k=5)
    assert len(hits) == 5
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert len({h.id for h in hits}) == 5
    scores = [h.score for h in hits]
    assert all(isinstance(s, float) and s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert h.source in h.sources
        assert h.text and h.text == doc_texts[h.source][h.start : h.end]
        assert h.kind in {"prose", "table_row", "list_item", "code"}
        assert -1.0 <= h.relevance <= 1.0 and h.relevance != 0.0
        assert h.to_json()["span"] == [h.start, h.end]


def test_dense_scores_are_the_cosine_relevance(app):
    hits = app.search("What are the limitations of VAEs?", mode="dense", top_k=5)
    for h in hits:
        assert h.score == pytest.approx(h.relevance, abs=1e-3)


def test_top_k_is_respected(app):
    assert len(app.search("generative models", top_k=2)) == 2
    assert len(app.search("generative models", top_k=12)) == 12


def test_hybrid_puts_the_gan_passage_first(app):
    hits = app.search("Who introduced GANs?")
    assert len(hits) == 5  # the settings' default top_k
    assert GAN_EVIDENCE in hits[0].text
    assert hits[0].source == TYPES
    assert hits[0].rank == 1
    # ...and only once
    assert sum(GAN_EVIDENCE in h.text for h in hits) == 1


def test_dense_finds_a_paraphrase_with_no_shared_keyword(app):
    target = "Using encryption, anonymization, and role-based access control."
    query = "how do you protect sensitive information"
    dense = app.search(query, mode="dense", top_k=5)
    assert dense[0].text == target
    hit = dense[0]
    assert not _words(query) & _words(hit.text + " " + hit.context)  # nothing to match on
    sparse = app.search(query, mode="sparse", top_k=20)
    assert target not in [h.text for h in sparse]


def test_sparse_finds_an_exact_term(app):
    hits = app.search("MLflow", mode="sparse", top_k=5)
    assert hits and hits[0].text == "Using tools like DVC or MLflow with database or cloud storage."
    # keyword search only returns passages that hold the keyword
    assert all("mlflow" in (h.text + h.context).lower() for h in hits)
    assert set(hits[0].sources) == {TYPES, DIFFERENCES}


def test_hybrid_fuses_both_lists(app):
    dense = {h.id for h in app.search("MLflow", mode="dense", top_k=5)}
    sparse = {h.id for h in app.search("MLflow", mode="sparse", top_k=5)}
    hybrid = app.search("MLflow", mode="hybrid", top_k=5)
    assert dense - sparse  # dense brings passages keyword search cannot
    assert {h.id for h in hybrid} <= dense | sparse
    assert {h.id for h in hybrid} & (dense - sparse)
    assert any("MLflow" in h.text for h in hybrid[:2])  # the only keyword match stays near the top


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_source_filter(app, mode):
    query = "Which model gives sharp high-resolution samples, and which GAN feature is hard?"
    unfiltered = app.search(query, mode=mode, top_k=10)
    assert any(TYPES not in h.sources for h in unfiltered)  # the filter has work to do
    hits = app.search(query, mode=mode, top_k=10, sources=["types-of-generative-models.txt"])
    assert hits
    assert all(TYPES in h.sources for h in hits)


def test_source_filter_keeps_shared_faq_items(app):
    hits = app.search("Pinecone FAISS Milvus", mode="sparse", top_k=3, sources=["types-of-generative-models"])
    assert hits[0].text == "Pinecone, FAISS, Milvus, and Weaviate."
    assert set(hits[0].sources) == {TYPES, DIFFERENCES}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_kind_filter_returns_only_faq_items(app, faq, mode):
    query = "How are GANs trained and where is training data stored?"
    assert any(h.kind != "list_item" for h in app.search(query, mode=mode, top_k=10))
    hits = app.search(query, mode=mode, top_k=10, kinds=["list_item"])
    assert hits
    assert all(h.kind == "list_item" for h in hits)
    assert {h.text for h in hits} <= faq


def test_kind_filter_table_rows(app):
    hits = app.search("interpretability of flow-based models", top_k=3, kinds=["table_row"])
    assert all(h.kind == "table_row" and h.source == CHOOSING for h in hits)
    assert hits[0].text.startswith("Interpretability\t")
    assert "Table columns: Feature | GANs" in hits[0].context


def test_unknown_source_is_bad_input(app):
    with pytest.raises(BadInput) as err:
        app.search("Who introduced GANs?", sources=["no-such-guide.txt"])
    assert "no-such-guide.txt" in err.value.one_line()
    assert err.value.exit_code == 2


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_question_is_bad_input(app, query):
    with pytest.raises(BadInput):
        app.search(query)


def test_unknown_mode_is_bad_input(app):
    with pytest.raises(BadInput):
        app.search("GANs", mode="fuzzy")


def test_sources_lists_the_guides_with_their_passage_counts(app):
    assert app.sources() == {CHOOSING: 11, DIFFERENCES: 39, TYPES: 35}
