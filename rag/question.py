"""What is asked: a question cleaned and bounded, and a follow-up ("and its limitations?")
rewritten by the LLM into a question that stands alone, so retrieval sees its subject."""

from __future__ import annotations

import re

from rag.errors import BadInput

# Words that make a question lean on the conversation before it.
_FOLLOWUP = re.compile(
    r"\b(it|its|it's|they|them|their|this|that|these|those|he|she|one|ones|former|latter|above)\b"
    r"|^\s*(and|what about|how about|why|also)\b",
    re.I,
)


MAX_QUESTION_CHARS = 2000


def clean_question(text: str) -> str:
    cleaned = "".join(ch for ch in (text or "") if ch.isprintable() or ch in "\n\t").strip()
    if not cleaned:
        raise BadInput(
            "the question is empty", 'type a question, e.g. rag ask "Who introduced GANs?"'
        )
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise BadInput(
            f"the question is {len(cleaned)} characters long; the limit is {MAX_QUESTION_CHARS}",
            "shorten it to the question itself",
        )
    return cleaned


def standalone_question(llm, question: str, turns: list[dict]) -> str:
    """Turn "and what are its limitations?" into a question that stands alone, using the
    conversation so far; `llm()` gives the model, loaded only when a rewrite is needed.
    Questions that name their subject are left as they are."""
    if not _FOLLOWUP.search(question):
        return question
    recent = [t for t in turns if t["role"] in ("user", "assistant")][-4:]
    convo = "\n".join(f"{t['role'].title()}: {t['content'][:400]}" for t in recent)
    messages = [
        {
            "role": "system",
            "content": (
                "Rewrite the user's follow-up question so it can be understood without the "
                "conversation: replace pronouns with what they refer to. "
                "Reply with the rewritten question only."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Conversation:\n{convo}\n\nFollow-up question: {question}\n\nRewritten question:"
            ),
        },
    ]
    rewritten = llm().complete_aside(messages, max_tokens=48).strip().strip('"').splitlines()
    rewritten = rewritten[0].strip() if rewritten else ""
    return rewritten if 3 <= len(rewritten) <= 300 else question
