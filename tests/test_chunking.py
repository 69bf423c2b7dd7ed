"""rag.chunking on the shipped guides and on small hand-made documents: verbatim spans, table
rows with their header, FAQ items, prose under a budget with a sentence of overlap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.chunking import DEFAULT_BUDGET, chunk_document
from rag.loaders import find_files, load
from rag.packing import CODE_LINE
from rag.sentences import sentences
from rag.tokens import token_counter
from rag.types import Document, Passage

count_tokens = token_counter("all-MiniLM-L6-v2")  # the budget's own unit

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CHOOSING = "corpus/choosing-a-generative-model-type.txt"
DIFFERENCES = "corpus/generative-models-differences-and-connections.txt"
TYPES = "corpus/types-of-generative-models.txt"

# The chunker's own sentence boundary, restated: end mark, closing quotes, space, capital.


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    files, skipped = find_files([CORPUS])
    assert skipped == []
    return {f.source: load(f) for f in files}


@pytest.fixture(scope="module")
def chunks(docs) -> dict[str, list[Passage]]:
    return {source: chunk_document(doc) for source, doc in docs.items()}


def _doc(text: str, kind: str = "txt", title: str = "T") -> Document:
    return Document(source="x." + kind, title=title, text=text, sha256="0", kind=kind)


def _sentences(text: str) -> list[str]:
    return sentences(text)  # the product's one splitter


# --- verbatim spans ------------------------------------------------------------------------


@pytest.mark.parametrize("source", [CHOOSING, DIFFERENCES, TYPES])
def test_every_passage_is_a_verbatim_span(docs, chunks, source):
    doc = docs[source]
    passages = chunks[source]
    assert len(passages) > 10
    for p in passages:
        assert p.text == doc.text[p.start : p.end]
        assert p.text.strip() == p.text and p.text
        assert p.source == source and p.title == doc.title
        # the context is beside the text, never spliced into it; FAQ answers and list items
        # are embedded bare (a title that is not about them drowns them)
        if p.kind == "list_item":
            assert p.search_text == p.text
        else:
            assert p.search_text.startswith(p.context + "\n")


def test_spans_are_verbatim_for_markdown_and_bullets():
    text = (
        "# Setup Guide\n\nIntro line here.\n\n## Install\n\n"
        "Run the installer. Then restart the machine.\n\n"
        "- first step\n- second step\n- third step\n- fourth step\n"
    )
    doc = _doc(text, "md", "Setup Guide")
    passages = chunk_document(doc)
    for p in passages:
        assert p.text == text[p.start : p.end]
    by_text = {p.text: p for p in passages}
    assert by_text["Intro line here."].section == ""
    assert by_text["Intro line here."].context == "Setup Guide"
    install = by_text["Run the installer. Then restart the machine."]
    assert (install.section, install.context, install.kind) == (
        "Install",
        "Setup Guide — Install",
        "prose",
    )
    assert [p.text for p in passages if p.kind == "list_item"] == [
        "- first step",
        "- second step",
        "- third step",
        "- fourth step",
    ]
    assert not any("#" in p.text for p in passages)  # headings go to section/context only


# --- tables --------------------------------------------------------------------------------

MODEL_TYPES = [
    "Generative adversarial networks (GANs)",
    "Variational autoencoders (VAEs)",
    "Autoregressive models",
    "Diffusion models",
    "Flow-based models",
]
FEATURES = [
    "Data type",
    "Task objective",
    "Quality of samples",
    "Control over generation",
    "Training complexity",
    "Interpretability",
]
MODEL_HEADER = "Table columns: Model | Key features | Applications"
FEATURE_HEADER = (
    "Table columns: Feature | GANs | VAEs | Autoregressive models | Diffusion models | "
    "Flow-based models"
)


def test_one_table_row_passage_per_model_type_and_per_feature(chunks):
    rows = [p for p in chunks[CHOOSING] if p.kind == "table_row"]
    assert [p.text.split("\t")[0] for p in rows] == MODEL_TYPES + FEATURES
    for p in rows[:5]:
        assert p.context.endswith("\n" + MODEL_HEADER)
        assert p.section == "Types of generative AI models"
    for p in rows[5:]:
        assert p.context.endswith("\n" + FEATURE_HEADER)
        assert p.section == "Comparison of models on different considerations"
    # The two guides with no tables have no table rows.
    assert not [p for p in chunks[TYPES] + chunks[DIFFERENCES] if p.kind == "table_row"]


def test_the_header_rows_are_context_not_passages(docs, chunks):
    rows = [p for p in chunks[CHOOSING] if p.kind == "table_row"]
    gan = rows[0]
    assert gan.text.startswith("Generative adversarial networks (GANs)\t")
    assert "Two competing neural networks" in gan.text
    assert "Key features" not in gan.text and not gan.text.startswith("Model\t")
    assert "Key features" in gan.context
    for p in chunks[CHOOSING]:
        assert not p.text.startswith(("Model\t", "Feature\t"))
    # Retrieval sees the row as "column: value" pairs.
    assert "Model: Generative adversarial networks (GANs)" in gan.search_text
    interp = rows[-1]
    assert interp.text == "Interpretability\tLow\tModerate\tHigh\tModerate\tLow"
    assert "GANs: Low; VAEs: Moderate; Autoregressive models: High" in interp.search_text


def test_guide_title_and_section_headings_are_not_passages(chunks):
    texts = [p.text for p in chunks[CHOOSING]]
    assert not any("Guide to Choosing" in t for t in texts)
    assert not any(t.startswith("##") for t in texts)
    assert chunks[CHOOSING][0].title == "Guide to Choosing a Generative AI Model Type"


# --- FAQ lists -----------------------------------------------------------------------------


def _faq_lines(source: str) -> list[str]:
    lines = (CORPUS / source.split("/", 1)[1]).read_text("utf-8").splitlines()
    start = lines.index("Sequence of prompts stored as linked records or documents.")
    return lines[start : start + 25]


@pytest.mark.parametrize("source", [DIFFERENCES, TYPES])
def test_each_faq_answer_is_its_own_list_item(chunks, source):
    faq = _faq_lines(source)
    assert (
        faq[-1] == "They store synthetic data alongside real data with clear metadata separation."
    )
    items = [p.text for p in chunks[source] if p.kind == "list_item"]
    assert items == faq
    assert "Pinecone, FAISS, Milvus, and Weaviate." in items
    assert "Using tools like DVC or MLflow with database or cloud storage." in items


def test_the_two_guides_share_the_faq_verbatim(chunks):
    a = [p.text for p in chunks[DIFFERENCES] if p.kind == "list_item"]
    b = [p.text for p in chunks[TYPES] if p.kind == "list_item"]
    assert a == b and len(a) == 25


def test_short_prose_lines_are_not_mistaken_for_a_list():
    text = "First idea here. It has two sentences.\nSecond line, one sentence.\nThird line.\n"
    assert [p.kind for p in chunk_document(_doc(text))] == ["prose"]


# --- prose budget and overlap ----------------------------------------------------------------


def _glued(p: Passage) -> bool:
    """The documented exceptions to the budget: a code block kept with the prose that
    introduces it, a "Label: …" line kept with its paragraph, a lead-in ending in ":" kept
    with what follows, or a single sentence longer than the budget."""
    lines = p.text.split("\n")
    code = re.compile(
        r"^\s*(#\s|[\w.\[\], ]+\s*=\s*\S|[\w.]+\(.*\)\s*$|(for|if|while|def|print)\b)"
    )
    label = re.compile(r"^\s*[A-Z][\w /()-]{0,30}:\s+\S")
    return (
        any(code.match(line) for line in lines[1:])
        or any(label.match(line) for line in lines[1:])
        or any(line.rstrip().endswith(":") for line in lines[:-1])
        or len(_sentences(p.text)) == 1
    )


def _over_budget(docs, budget: int, overlap: int) -> tuple[list[Passage], list[Passage]]:
    """(prose passages, the ones over the budget)"""
    prose = [
        p for d in docs.values() for p in chunk_document(d, budget, overlap) if p.kind == "prose"
    ]
    return prose, [p for p in prose if count_tokens(p.text) > budget]


@pytest.mark.parametrize(
    ("budget", "overlap"),
    [
        (120, 0),
        (60, 0),
        (120, 1),
    ],
)
def test_prose_passages_stay_under_the_budget(docs, budget, overlap):
    prose, over = _over_budget(docs, budget, overlap)
    assert [(count_tokens(p.text), p.text[:50]) for p in over if not _glued(p)] == []
    # the exceptions stay exceptions
    assert len(over) <= len(prose) // 4


def test_overlap_never_pushes_a_passage_over_the_budget():
    p1 = "Alpha beta gamma delta epsilon. Zeta eta theta iota kappa. Lambda mu nu xi omicron."
    p2 = " ".join(f"w{i}" for i in range(36)) + "."  # 38 tokens: fits the budget of 40 alone
    passages = chunk_document(_doc(p1 + "\n" + p2 + "\n"), budget=40, overlap=1)
    assert [count_tokens(p.text) for p in passages if count_tokens(p.text) > 40] == []


def test_long_paragraph_is_split_on_sentences_with_one_sentence_of_overlap():
    sentences = [f"Sentence number {i} talks about model {i} and its data." for i in range(30)]
    text = " ".join(sentences) + "\n"
    passages = chunk_document(_doc(text), budget=40, overlap=1)
    assert len(passages) >= 8
    for p in passages:
        assert p.kind == "prose"
        assert p.text == text[p.start : p.end]
        assert count_tokens(p.text) <= 40
        assert p.text.startswith("Sentence number") and p.text.endswith(".")
    covered = set()
    for a, b in zip(passages, passages[1:]):
        shared = text[b.start : a.end]
        assert b.start < a.end, "neighbours must overlap"
        assert a.text.endswith(shared) and b.text.startswith(shared)
        assert _sentences(shared) == [shared]  # exactly one sentence
        assert shared == _sentences(a.text)[-1]
        covered.update(_sentences(a.text))
    covered.update(_sentences(passages[-1].text))
    assert covered == set(sentences)  # nothing lost


def test_overlap_zero_gives_disjoint_passages():
    text = " ".join(f"Sentence number {i} talks about model {i}." for i in range(30)) + "\n"
    passages = chunk_document(_doc(text), budget=40, overlap=0)
    for a, b in zip(passages, passages[1:]):
        assert a.end <= b.start


@pytest.mark.parametrize("source", [DIFFERENCES, TYPES])
def test_neighbouring_prose_passages_in_the_guides_overlap_by_a_sentence(docs, chunks, source):
    text = docs[source].text
    prose = [p for p in chunks[source] if p.kind == "prose"]
    pairs = overlapping = 0
    for a, b in zip(prose, prose[1:]):
        if b.start >= a.end and text[a.end : b.start].strip():
            continue  # a list or table lies between them: a new run of prose
        pairs += 1
        if b.start < a.end:
            overlapping += 1
            shared = text[b.start : a.end]
            assert a.text.endswith(shared) and b.text.startswith(shared)
            assert len(_sentences(shared)) == 1
            assert shared == _sentences(a.text)[-1]
        else:
            # the documented exceptions: a last sentence longer than a third of the budget, one
            # that would push the next passage over the budget, or a "Limitations: …" line that
            # closes its section, or a code line ending an example, is not repeated
            last = _sentences(a.text)[-1]
            carried = count_tokens(last)
            closes_section = bool(re.match(r"[A-Z][\w /()-]{0,30}:\s+\S", last.strip()))
            code = bool(CODE_LINE.match(last))
            assert (
                closes_section
                or code
                or carried > DEFAULT_BUDGET // 3
                or carried + count_tokens(b.text) > DEFAULT_BUDGET
            ), a.text[-80:]
    # Every pair without overlap is one of the exceptions checked above.
    assert pairs >= 8 and overlapping >= pairs // 3


def test_a_line_that_closes_a_section_is_not_carried_into_the_next_topic(chunks):
    # "Limitations: … mode collapse" ends the GAN section; repeated at the head of the VAE
    # passage it read as a VAE limitation (a 1.5B model answered "VAEs suffer from mode collapse").
    prose = [p for p in chunks[TYPES] if p.kind == "prose"]
    assert not [p.text[:60] for p in prose if p.text.startswith("Limitations:")]
    collapse = [p for p in prose if "mode collapse" in p.text]
    assert len(collapse) == 1 and "GAN" in collapse[0].text
