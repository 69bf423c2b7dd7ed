"""When rag answers and when it says the documents do not: the refusal text, and the tests
that lead to it before generation (no passage relevant enough) and during it (the model
itself declining). An instruction in the question is no reason of its own: the question is
answered from the documents like any other, and the answer check keeps only what they state."""

from __future__ import annotations

import re

from rag.prompt import NOT_FOUND
from rag.types import Hit

REFUSAL = "The documents I have do not answer this question, so I won't guess."
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


def refusal_before_answer(hits: list[Hit], min_relevance: float) -> tuple[str, str] | None:
    """(refusal text, reason) when the question is not to be answered at all, else None."""
    best = max((h.relevance for h in hits), default=0.0)
    if best < min_relevance:
        return REFUSAL, f"no passage relevant enough (best {best:.2f} < {min_relevance})"
    return None
