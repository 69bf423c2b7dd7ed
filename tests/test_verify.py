"""The entailment judge (rag/verify.py) with the real default model, on sentences of the
kinds a word-overlap check lets through or wrongly drops. Each passage is shown to the judge
as the answering model sees it (a table row as its cells under their column names)."""

from __future__ import annotations

import pytest
from helpers import passage_hit

from rag.judge import EntailmentJudge
from rag.prompt import readable
from rag.settings import Settings
from rag.types import Hit

THRESHOLD = Settings().judge_threshold


def passage(text: str, context: str = "", kind: str = "prose") -> Hit:
    return passage_hit(text, context, kind)


DIFFUSION = passage(
    "Diffusion models can be more stable and easier to train than GANs, but often slower "
    "because they need many denoising steps."
)
ROW = passage(
    "Interpretability\tLow\tModerate\tHigh",
    "Guide\nTable columns: Feature | GANs | VAEs | Autoregressive",
    "table_row",
)
GAN = passage(
    "GANs use a dual-network setup: a Generator and a Discriminator. They were introduced by "
    "Ian Goodfellow in 2014."
)


@pytest.fixture(scope="module")
def judge(default_llm):
    return EntailmentJudge(default_llm, THRESHOLD)


@pytest.mark.slow
@pytest.mark.parametrize(
    "hit, sentence",
    [
        (DIFFUSION, "Diffusion models are faster than GANs."),
        (ROW, "GANs have high interpretability."),
        (GAN, "GANs do not use a Discriminator network."),
    ],
    ids=["opposite comparative", "wrong table cell", "negation"],
)
def test_contradicted_sentences_are_judged_unsupported(judge, hit, sentence):
    assert judge.probability(readable(hit), sentence) < THRESHOLD


@pytest.mark.slow
@pytest.mark.parametrize(
    "hit, sentence",
    [
        (GAN, "The two networks in a GAN are the Generator and the Discriminator."),
        (GAN, "Generative Adversarial Networks were introduced by Ian Goodfellow in 2014."),
        # A known miss, kept visible: the judge rejects about one correct table-cell reading in
        # nine on the claim set (eval/README.md), and this one at P(yes) 0.54. Strict, so the
        # test says so when a better judge starts to pass it.
        pytest.param(
            ROW,
            "VAEs have moderate interpretability.",
            marks=pytest.mark.xfail(strict=True, reason="the 1.5B judge misreads this table cell"),
        ),
    ],
    ids=["paraphrase", "acronym expansion", "table cell"],
)
def test_faithful_sentences_are_judged_supported(judge, hit, sentence):
    assert judge.probability(readable(hit), sentence) >= THRESHOLD
