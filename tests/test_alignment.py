"""Contradictions that share every word with their passage (rag/alignment.py), checked as an
answer checks them: through rag.verify.Verifier with the real BM25 analyser and embedding
model. Each contradiction has a faithful twin on the same passage that must be kept, so a
check that simply refused everything fails here."""

from __future__ import annotations

import pytest
from helpers import passage_hit

from rag.alignment import conflict, read
from rag.embedding import SparseEncoder
from rag.types import Hit
from rag.verify import Verifier
from rag.words import code_terms, contract_acronyms


def passage(text: str, context: str = "Guide", kind: str = "prose") -> Hit:
    return passage_hit(text, context, kind)


DIFFUSION = passage(
    "Diffusion models can be more stable and easier to train than GANs, but often slower "
    "because they need many denoising steps."
)
HEADER = "Guide\nTable columns: Feature | GANs | VAEs | Autoregressive models"
ROW = passage("Interpretability\tLow\tModerate\tHigh", HEADER, "table_row")
PIPE_ROW = passage("| Interpretability | Low | Moderate | High |", HEADER, "table_row")
GAN = passage(
    "GANs use a dual-network setup: a Generator and a Discriminator. They were introduced by "
    "Ian Goodfellow in 2014."
)
STATUS = passage(
    "If a command is not found, the child process created to execute it returns a status of "
    "127. If a command is found but is not executable, the return status is 126."
)
ALIASES = passage(
    "Aliases are expanded when a command is read, not when it is executed. Therefore, an alias "
    "definition appearing on the same line as another command does not take effect until the "
    "next line of input is read."
)


@pytest.fixture(scope="module")
def verifier_for(dense_encoder):
    sparse = SparseEncoder()

    def terms(text):
        return set(sparse.encode_query(text)[0])

    return lambda hit: Verifier([hit], lambda: dense_encoder, terms)


def verdict(verifier_for, hit, sentence, question):
    v = verifier_for(hit)
    return v.check(sentence, [1], question), v


ARRAYS = passage(
    "Indexed arrays are referenced using integers and are zero-based; associative arrays use "
    "arbitrary strings."
)
STACK = passage(
    "The pushd builtin adds directories to the stack, and the popd builtin removes "
    "directories from the stack."
)
FUNCNEST = passage(
    "FUNCNEST: if set to a numeric value greater than 0, defines a maximum function nesting "
    "level. Shell functions are executed like commands; shell function invocations past the "
    "level are aborted."
)


@pytest.mark.parametrize(
    "hit, sentence, question",
    [
        (DIFFUSION, "Diffusion models are faster than GANs.", "Are diffusion models fast?"),
        (DIFFUSION, "GANs are easier to train than diffusion models.", "Which is easier to train?"),
        (ROW, "GANs have high interpretability.", "How interpretable are GANs?"),
        (PIPE_ROW, "GANs have high interpretability.", "How interpretable are GANs?"),
        (GAN, "GANs do not use a Discriminator.", "Do GANs use a discriminator?"),
        (STATUS, "A command that is not found returns status 126.", "What does bash return?"),
        (ARRAYS, "Associative arrays are referenced using integers.", "How are arrays indexed?"),
        (STACK, "The popd builtin adds directories to the stack.", "What does popd do?"),
    ],
    ids=[
        "opposite comparative",
        "comparison turned round",
        "wrong table cell",
        "wrong cell of a Markdown row",
        "negation",
        "number bound to the other condition",
        "value of one thing said of another",
        "the other builtin's action",
    ],
)
def test_a_contradicted_sentence_is_dropped(verifier_for, hit, sentence, question):
    v, _ = verdict(verifier_for, hit, sentence, question)
    assert v.kept == [] and v.reason.startswith("contradicted"), v.reason


@pytest.mark.parametrize(
    "hit, sentence, question",
    [
        (DIFFUSION, "Diffusion models are often slower than GANs.", "Are diffusion models fast?"),
        (DIFFUSION, "Diffusion models are easier to train than GANs.", "Which is easier to train?"),
        (ROW, "VAEs have moderate interpretability.", "How interpretable are VAEs?"),
        (PIPE_ROW, "GANs have low interpretability.", "How interpretable are GANs?"),
        (
            GAN,
            "The two networks in a GAN are the Generator and the Discriminator.",
            "What are the two networks in a GAN?",
        ),
        (
            GAN,
            "Generative Adversarial Networks were introduced by Ian Goodfellow in 2014.",
            "Who introduced GANs?",
        ),
        (STATUS, "A command that is not found returns status 127.", "What does bash return?"),
        (
            ALIASES,
            "Aliases are expanded when a command is read rather than when it is executed.",
            "When are aliases expanded?",
        ),
        (ARRAYS, "Associative arrays use arbitrary strings.", "How are arrays indexed?"),
        (STACK, "The popd builtin removes directories from the stack.", "What does popd do?"),
        (
            FUNCNEST,
            "To cap how deeply shell functions recurse, set FUNCNEST to a number above 0.",
            "How do I cap how deeply shell functions recurse?",
        ),
    ],
    ids=[
        "the passage's own comparative",
        "the comparison as stated",
        "the right cell",
        "the right cell of a Markdown row",
        "two networks",
        "acronym spelled out",
        "number with its condition",
        "rather than as not",
        "each value with its own thing",
        "each builtin's own action",
        "the question's words echoed",
    ],
)
def test_a_faithful_sentence_is_kept(verifier_for, hit, sentence, question):
    v, _ = verdict(verifier_for, hit, sentence, question)
    assert v.kept == [1], v.reason


HOSTNAME = passage(
    "systemd sets the system hostname at boot time to the name stored in /etc/hostname. "
    "Units are started with systemctl enable --now NAME, which also enables them at boot."
)
NCURSES = passage(
    "Under the East Asian locale, the box drawing characters may be displayed wider than your "
    "desired width. ncurses: Set environment export NCURSES_NO_UTF8_ACS=0. GNU gettext takes "
    'a priority list of languages: $ export LANGUAGE="pt:pt_BR:es"'
)


@pytest.mark.parametrize(
    "hit, sentence, kept",
    [
        (HOSTNAME, "The hostname is read at boot from /etc/hostname.", True),
        (HOSTNAME, "The hostname is read at boot from /etc/hosts.", False),
        (HOSTNAME, "The hostname is read at boot from /etc/hostname.conf.", False),
        (HOSTNAME, "systemctl enable --now NAME starts a unit and enables it at boot.", True),
        (HOSTNAME, "systemctl enable --force NAME starts a unit and enables it at boot.", False),
        (NCURSES, "For ncurses, set the environment variable `NCURSES_NO_UTF8_ACS=0`.", True),
        (NCURSES, "For ncurses, set the environment variable `NCURSES_NO_UTF8_ACS=1`.", False),
        (NCURSES, 'Set the gettext priority list with `export LANGUAGE="pt:pt_BR:es"`.', True),
        (NCURSES, 'Set the gettext priority list with `export LANGUAGE="pt:es"`.', False),
    ],
    ids=[
        "the passage's path",
        "another path",
        "a longer name",
        "its option",
        "another option",
        "its setting",
        "another value",
        "its list",
        "another list",
    ],
)
def test_a_path_option_or_setting_must_be_the_passages_own(hit, sentence, kept, verifier_for):
    # What a how-to answer names, a model readily invents: one character off is another file,
    # and a value inside code ("=0", "pt_BR") belongs to its setting, not to the prose.
    v, _ = verdict(verifier_for, hit, sentence, "How do I set this up?")
    assert bool(v.kept) == kept, v.reason


def test_code_terms_are_paths_options_and_dotted_names():
    assert code_terms(
        "Set `vm.swappiness=10` in /etc/sysctl.conf, run sysctl -p or use --system, "
        "e.g. with $HOME set."
    ) == {"vm.swappiness=10", "/etc/sysctl.conf", "-p", "--system", "home"}
    # Prose takes none of these shapes.
    assert code_terms("A dual-network setup, i.e. a Generator and/or a Discriminator.") == set()


def test_a_supported_sentence_about_another_question_is_not_an_answer(verifier_for):
    faq = passage("Pinecone, FAISS, Milvus, and Weaviate.", "FAQ")
    sentence = "Pinecone, FAISS, Milvus and Weaviate are examples."
    v, verifier = verdict(verifier_for, faq, sentence, "What are the two networks in a GAN?")
    assert v.kept == [1]  # the passage does state it…
    assert not verifier.about_question(sentence, "What are the two networks in a GAN?")
    # …and asked what it answers, it is one.
    assert verifier.about_question(sentence, "Which vector databases are popular?")


def test_a_negation_bears_on_the_word_it_precedes():
    r = read("GANs do not require large datasets, and they train quickly.")
    assert [r.tokens[h] for h in r.heads] == ["require"]
    negated = {r.tokens[j] for j in r.negated}
    assert {"require", "large", "datasets"} <= negated and "train" not in negated


def test_a_delay_is_not_a_denial():
    # "does not take effect until the next line" says when, not whether.
    assert conflict("An alias takes effect from the next line.", [ALIASES]) == ""


def test_only_an_opposite_the_passage_states_unnegated_counts():
    hit = passage("Diffusion models are not slower than GANs on small images.")
    assert conflict("Diffusion models are faster than GANs on small images.", [hit]) == ""


def test_a_word_that_merely_starts_like_a_prefix_is_no_opposite():
    hit = passage("Write the value on one line.")
    assert conflict("Write the value inline.", [hit]) == ""


def test_acronym_expansions_are_checked_as_the_acronym():
    known = {"GAN": "GAN", "PAM": "PAM", "CRLF": "CR-LF"}
    assert contract_acronyms("Generative Adversarial Networks are old.", known) == "GANs are old."
    assert (
        contract_acronyms("Errors in Pluggable Authentication Module settings.", known)
        == "Errors in PAM settings."
    )
    assert contract_acronyms("It ends lines with carriage return line feed.", known) == (
        "It ends lines with CR-LF."
    )
    # Lower-case runs of two words, or with a stop word, are left alone.
    assert contract_acronyms("They go away.", {"GA": "GA"}) == "They go away."
    mail = {"MAIL": "MAIL"}
    assert contract_acronyms("To make an interactive login shell.", mail) == (
        "To make an interactive login shell."
    )


def test_words_the_passages_write_are_not_contracted():
    known = {"AI": "AI", "LSTM": "LSTM"}
    title = 'The paper "Attention Is All You Need" introduced transformers.'
    # Title case is no spelling-out, whatever the passages hold.
    assert contract_acronyms(title, known) == title
    said = "LSTM stands for Long Short-Term Memory."
    assert contract_acronyms(said, known) == "LSTM stands for LSTM."
    passages = "long short-term memory (lstm) networks keep a cell state."
    assert contract_acronyms(said, known, passages) == said


def test_a_title_the_passage_quotes_is_supported(verifier_for):
    hit = passage(
        "Let us compare transformers and RNNs. Transformer models, introduced in the paper "
        "“Attention Is All You Need” by Vaswani et al., use attention mechanisms. They capture "
        "long-range dependencies. They write code. They make audio. Many AI systems use them."
    )
    v, _ = verdict(
        verifier_for,
        hit,
        'The paper "Attention Is All You Need" by Vaswani et al. introduced transformers.',
        "Which paper introduced transformers?",
    )
    assert v.kept == [1], v


def test_table_cells_come_with_their_columns():
    assert ROW.cells() == [
        ("Feature", "Interpretability"),
        ("GANs", "Low"),
        ("VAEs", "Moderate"),
        ("Autoregressive models", "High"),
    ]
    assert PIPE_ROW.cells() == ROW.cells()
    assert passage("plain prose").cells() is None
