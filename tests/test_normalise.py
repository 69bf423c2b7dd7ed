"""rag.normalise: encoding repair and print-artefact removal, on the shipped guides and on
small hand-made texts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.normalise import collapse_ws, dedup_key, normalise

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
GUIDES = sorted(p.name for p in CORPUS.glob("*.txt"))


def _raw(name: str) -> str:
    return (CORPUS / name).read_text("utf-8")


@pytest.fixture(scope="module")
def normalised() -> dict[str, str]:
    return {name: normalise(_raw(name)) for name in GUIDES}


def test_the_corpus_is_the_one_these_tests_describe():
    assert GUIDES == [
        "choosing-a-generative-model-type.txt",
        "generative-models-differences-and-connections.txt",
        "types-of-generative-models.txt",
    ]


# --- broken encodings ----------------------------------------------------------------------

REPAIRS = [
    # (guide, broken as shipped, repaired)
    ("generative-models-differences-and-connections.txt", "Letβs compare", "Let’s compare"),
    ("generative-models-differences-and-connections.txt", "Whether itβs text", "Whether it’s text"),
    (
        "generative-models-differences-and-connections.txt",
        "Models like DALLΒ·E, CLIP",
        "Models like DALL·E, CLIP",
    ),
    (
        "types-of-generative-models.txt",
        "Stable Diffusion and DALLΒ·E 3",
        "Stable Diffusion and DALL·E 3",
    ),
    (
        "generative-models-differences-and-connections.txt",
        "the paper βAttention Is All You Needβ by Vaswani",
        "the paper “Attention Is All You Need” by Vaswani",
    ),
    ("types-of-generative-models.txt", "AI modelsβGANs, VAEs", "AI models—GANs, VAEs"),
    ("types-of-generative-models.txt", "and moreβhelps learners", "and more—helps learners"),
]


@pytest.mark.parametrize(("guide", "broken", "fixed"), REPAIRS, ids=[r[2][:24] for r in REPAIRS])
def test_broken_encodings_in_the_guides_are_repaired(normalised, guide, broken, fixed):
    assert broken in _raw(guide)  # the guide really ships the broken form
    text = normalised[guide]
    assert fixed in text
    assert broken not in text


def test_no_stray_greek_letters_survive_in_the_guides(normalised):
    for name, text in normalised.items():
        assert "β" not in text and "Β" not in text, name


def test_cp1252_mojibake_is_repaired():
    assert (
        normalise("donâ€™t say â€œhelloâ€\x9d â€” ok Â· cafÃ©") == "don’t say “hello” — ok · café\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο. Το βιβλίο «Βίβλος» είναι εδώ.\n",
        "Ο συντελεστής β και η παράμετρος Β·Γ μένουν όπως είναι.\n",
        "Αλφάβητο: α, β, γ, δ.\n",
    ],
)
def test_real_greek_text_is_left_alone(text):
    assert normalise(text) == text


def test_a_real_beta_in_repaired_text_survives():
    # A lone β in a text that also carries the mojibake: the repair must not eat the symbol
    # where it cannot be a broken quote or dash.
    assert normalise("Letβs train a β-VAE (β) now.\n") == "Let’s train a β-VAE (β) now.\n"


# --- print artefacts -----------------------------------------------------------------------


def test_print_artefacts_are_dropped_from_the_guide(normalised):
    raw = _raw("choosing-a-generative-model-type.txt")
    assert "11/14/24, 9:34 PM about:blank" in raw and "about:blank 1/2" in raw
    text = normalised["choosing-a-generative-model-type.txt"]
    assert "about:blank" not in text
    assert "9:34 PM" not in text
    assert text.startswith("## **Guide to Choosing a Generative AI Model Type**\n")
    assert text.endswith("## Author(s)\n")


def test_print_artefacts_are_dropped_but_content_mentioning_them_is_kept():
    text = (
        "11/14/24, 9:34 PM about:blank\n\nFirst paragraph.\n\nabout:blank 1/2\n\n"
        "Open about:blank in a new tab.\n3/7/2025, 10:02 AM https://example.com/guide\n"
        "Second paragraph.\nhttps://example.com/guide 2/2\n"
    )
    assert (
        normalise(text)
        == "First paragraph.\n\nOpen about:blank in a new tab.\n\nSecond paragraph.\n"
    )


# --- layout --------------------------------------------------------------------------------


def test_line_endings_bom_controls_and_unicode_form():
    text = "\ufeffOne\r\ntwo\rthree\x00\x07 \n\n\n\n\nfour  \ncafe\u0301\n"
    assert normalise(text) == "One\ntwo\nthree\n\nfour\ncafé\n"


def test_table_rows_keep_their_tabs(normalised):
    text = normalised["choosing-a-generative-model-type.txt"]
    assert "Model\tKey features\tApplications\t\n" in text
    assert "Interpretability\tLow\tModerate\tHigh\tModerate\tLow\n" in text


# --- idempotence ---------------------------------------------------------------------------


@pytest.mark.parametrize("guide", GUIDES)
def test_idempotent_on_the_guides(normalised, guide):
    once = normalised[guide]
    assert once != _raw(guide)  # every guide needs some repair
    assert normalise(once) == once


COMMON = [
    "\r\n",
    "\t",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "a",
    "s",
    "t",
    "re",
    "word",
    "Word",
    "Let",
    ".",
    ",",
    "(",
    ")",
    "’",
    "“",
    "about:blank 1/2",
    "11/14/24, 9:34 PM about:blank",
]
BROKEN = {
    "cp1253": ["β", "Β·"],
    "cp1252": ["â€™", "â€œ", "â€\x9d", "Ã©", "Â·", "Â "],
}


@pytest.mark.parametrize("family", sorted(BROKEN))
def test_idempotent_on_random_texts(family):
    rng = random.Random(family)
    pieces = COMMON + BROKEN[family] * 3
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        once = normalise(text)
        assert normalise(once) == once, repr(text)


# --- keys ----------------------------------------------------------------------------------


def test_dedup_key_ignores_case_punctuation_and_whitespace():
    assert dedup_key("Pinecone, FAISS, Milvus, and Weaviate.") == dedup_key(
        "pinecone faiss  milvus and\nweaviate"
    )
    assert dedup_key("Pinecone, FAISS, Milvus, and Weaviate.") != dedup_key(
        "Pinecone, FAISS, and Weaviate."
    )


@pytest.mark.parametrize(
    "one, other",
    [
        ("C++ compiles templates ahead of time.", "C# compiles templates ahead of time."),
        ("Loop while a != b.", "Loop while a == b."),
        ("Keep x <= 1 here.", "Keep x >= 1 here."),
        ("Set β1 = 0.9 and β2 = 0.999.", "Set α1 = 0.9 and α2 = 0.999."),
        ("Use a && b.", "Use a || b."),
        ("snake_case names", "snake case names"),
    ],
)
def test_symbols_that_change_the_meaning_survive_normalisation_and_dedup(one, other):
    for text in (one, other):
        assert normalise(text + "\n") == text + "\n"
    assert dedup_key(one) != dedup_key(other)
    # ... while the prose around them still folds.
    assert dedup_key(one) == dedup_key("  " + one.upper().replace(".", " ") + "\n")


def test_collapse_ws():
    assert collapse_ws("  a\tb\n\n c  ") == "a b c"
