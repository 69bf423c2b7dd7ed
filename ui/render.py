"""Answers, sources and passages as HTML for the chat page. Pure functions over the JSON form
of an answer (`Answer.to_json()`), so a live answer and one reopened from history look the same.

Everything that comes from a document, the model or a user is escaped here: HTML special
characters become entities, and so do the characters Markdown or LaTeX would act on, because
the chat window runs its messages through a Markdown renderer. Nothing is ever inserted live.
"""

from __future__ import annotations

import re

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Markdown / LaTeX syntax characters, made inert as numeric entities.
_ENTITIES.update({c: f"&#{ord(c)};" for c in "\\`*_[]{}()#+-!|~$:"})

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
# A fenced code block of an answer (rag/citations.py keeps it whole): group 1 is its code.
_CODE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*\n(.*?)(?:^[ \t]*(?:```|~~~)[ \t]*$|\Z)", re.M | re.S)
NOT_FOUND_TITLE = "Not in the documents"
DECLINED_TITLE = "Declined"


def esc(text: str) -> str:
    """Escape for HTML inside Markdown: one pass, so entities are never escaped twice.
    Line breaks become <br>, so a block never contains a blank line that would end it."""
    out = "".join(_ENTITIES.get(ch, ch) for ch in str(text or ""))
    return re.sub(r"\r?\n", "<br>", out)


def answer_text_html(text: str) -> str:
    """The answer with its [n] markers set apart (they stay visible as "[n]") and each fenced
    code block as preformatted code, whose brackets are code, not markers."""
    parts, pos = [], 0
    text = text or ""
    for m in _CODE.finditer(text):
        parts.append(_prose_html(text[pos : m.start()]))
        parts.append(f'<pre class="rag-code"><code>{esc(m.group(1).rstrip())}</code></pre>')
        pos = m.end()
    parts.append(_prose_html(text[pos:]))
    return "".join(parts)


def _prose_html(text: str) -> str:
    parts, pos = [], 0
    for m in _MARKER.finditer(text):
        parts.append(esc(text[pos : m.start()]))
        nums = ", ".join(n.strip() for n in m.group(1).split(","))
        parts.append(f' <span class="rag-cite">&#91;{esc(nums)}&#93;</span>')
        pos = m.end()
    parts.append(esc(text[pos:]))
    return "".join(parts)


def highlight(passage: str, spans: list[list[int]]) -> str:
    """The passage, escaped, with the sentences that back the answer (`spans`, offsets into
    the passage found by the product when it answered) wrapped in <mark>."""
    passage = passage or ""
    out, pos = [], 0
    for a, b in sorted(spans or []):
        if a < pos or b > len(passage):
            continue
        out.append(esc(passage[pos:a]))
        out.append(f'<mark class="rag-support">{esc(passage[a:b])}</mark>')
        pos = b
    out.append(esc(passage[pos:]))
    return "".join(out)


def _where(item: dict) -> str:
    title = item.get("title") or item.get("source", "").rsplit("/", 1)[-1]
    parts = [f'<span class="rag-title">{esc(title)}</span>']
    if item.get("section"):
        parts.append(f'<span class="rag-section">{esc(item["section"])}</span>')
    parts.append(f'<span class="rag-file">{esc(item.get("source", ""))}</span>')
    return ' <span class="rag-dot">·</span> '.join(parts)


def sources_html(citations: list[dict]) -> str:
    if not citations:
        return ""
    items = "".join(
        '<div class="rag-source"><div class="rag-source-head">'
        f'<span class="rag-n">&#91;{c["n"]}&#93;</span> {_where(c)}</div>'
        '<div class="rag-passage">'
        f"{highlight(c.get('text', ''), c.get('highlights', []))}</div></div>"
        for c in citations
    )
    n = len(citations)
    return (
        '<details class="rag-sources" open>'
        f"<summary>Sources ({n} passage{'s' if n != 1 else ''})</summary>"
        f"{items}</details>"
    )


def render_answer(answer: dict) -> str:
    """A finished answer: the text with markers and its sources, or the refusal box."""
    if answer.get("abstained"):
        declined = "instruction" in str(answer.get("checks", {}).get("refused", ""))
        return (
            '<div class="rag-refusal"><div class="rag-refusal-title">'
            f"{DECLINED_TITLE if declined else NOT_FOUND_TITLE}</div>"
            f'<div class="rag-refusal-text">{esc(answer.get("answer", ""))}</div></div>'
        )
    head = ""
    standalone = answer.get("standalone_question")
    if standalone and standalone != answer.get("question"):
        head = f'<div class="rag-understood">Understood as: {esc(standalone)}</div>'
    body = f'<div class="rag-answer">{answer_text_html(answer.get("answer", ""))}</div>'
    return head + body + sources_html(answer.get("citations", []))


def render_partial(sentences: list[str]) -> str:
    """An answer still being written: the verified sentences so far and a writing indicator."""
    text = " ".join(sentences)
    return (
        f'<div class="rag-answer">{answer_text_html(text)} '
        '<span class="rag-typing">writing…</span></div>'
    )


def render_waiting(note: str) -> str:
    return f'<div class="rag-wait">{esc(note)}</div>'


def render_error(message: str) -> str:
    return f'<div class="rag-error">Could not answer: {esc(message)}</div>'


def render_user(text: str) -> str:
    return esc(text)


def passages_html(passages: list[dict], expansion: str = "") -> str:
    """Everything retrieved for the last question, best first, with its scores, under the
    model's guess that was searched with the question (so a surprising ranking is explained)."""
    if not passages:
        return '<div class="rag-muted">No passages retrieved yet.</div>'
    guess = (
        (
            '<div class="rag-muted rag-expansion">'
            "Searched with the question and the model's own guess "
            f"(used to search only, never as a source): {esc(expansion)}</div>"
        )
        if expansion
        else ""
    )
    rows = "".join(
        '<div class="rag-hit"><div class="rag-hit-head">'
        f'<span class="rag-n">#{p.get("rank", i + 1)}</span> '
        f'<span class="rag-score">score {float(p.get("score", 0)):.4f}</span> '
        f'<span class="rag-score">relevance {float(p.get("relevance", 0)):.2f}</span> '
        f"{_where(p)}</div>"
        f'<div class="rag-passage">{esc(p.get("text", ""))}</div></div>'
        for i, p in enumerate(passages)
    )
    return f'{guess}<div class="rag-hits">{rows}</div>'


def quality(answer: dict) -> float | None:
    """Fraction of the model's sentences that a passage supports (None when it never wrote
    any, e.g. a refusal decided before generation)."""
    checked = [
        s
        for s in answer.get("checks", {}).get("sentences", [])
        if s.get("verdict") != "model declined"
    ]
    if not checked:
        return None
    return round(
        sum(1 for s in checked if s.get("kept") or s.get("verdict") == "unchecked") / len(checked),
        3,
    )


def documents_rows(sources: dict[str, int]) -> list[list]:
    return [[name, count] for name, count in sorted(sources.items())]
