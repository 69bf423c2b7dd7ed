"""When rag answers and when it says the documents do not: the refusal texts, and the tests
that lead to them before generation (an instruction to ignore the documents, no passage
relevant enough) and during it (the model itself declining)."""

from __future__ import annotations

import re

from rag.prompt import NOT_FOUND, is_injection
from rag.types import Hit

REFUSAL = "The documents I have do not answer this question, so I won't guess."
REFUSAL_INJECTION = (
    "I only answer questions from the indexed documents, "
    "and I don't follow instructions to ignore them."
)
NOTHING_SUPPORTED = "no sentence of the answer is supported by a passage"

# How a small model says it cannot answer when it does not use the exact NOT_FOUND reply.
_DECLINE_HINTS = re.compile(
    r"not in (the )?documents|passages do not|passages don't|"
    r"does not (mention|contain|say|provide)|"
    r"do not (mention|contain|provide)|no information|not (mentioned|provided|specified|stated)|"
    r"cannot answer|can't answer|"
    r"i don't know|i do not know|unable to (answer|find)",
    re.I,
)


def declines(sentence: str) -> bool:
    """Whether a sentence of the model's answer says it cannot answer (it is not a claim, so
    it is neither checked nor shown)."""
    return NOT_FOUND.lower() in sentence.lower() or bool(_DECLINE_HINTS.search(sentence))


def refusal_before_answer(
    question: str, asked: str, hits: list[Hit], min_relevance: float
) -> tuple[str, str] | None:
    """(refusal text, reason) when the question is not to be answered at all, else None.
    `asked` is the question as rewritten for a follow-up; both are tested for an injection."""
    if is_injection(question) or is_injection(asked):
        return REFUSAL_INJECTION, "instruction to ignore the documents"
    best = max((h.relevance for h in hits), default=0.0)
    if best < min_relevance:
        return REFUSAL, f"no passage relevant enough (best {best:.2f} < {min_relevance})"
    return None
