"""Packing a run of prose lines into passages under a token budget: paragraphs whole where they
fit, long ones split on sentences (and a sentence with no end at words), a sentence of overlap
between neighbours, code glued to the prose that introduces it. rag/chunking.py finds the
structure; this module only packs what it hands over."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.sentences import sentence_spans

CODE_LINE = re.compile(
    r"^\s*(?:#\s|//|(?:for|while|if|elif|else|def|class|return|import|from|print)\b.*[:)]?$)"
    r"|^\s*[\w.\[\]]+(?:\s*,\s*[\w.\[\]]+)*\s*[+\-*/]?=\s*\S"
    r"|^\s*[\w.]+\(.*\)\s*$"
)
# "Strengths: …": a label line continues the paragraph above.
LABEL = re.compile(r"^\s*[A-Z][\w /()-]{0,30}:\s+\S")


@dataclass
class Line:
    start: int
    end: int
    text: str
    code: bool = False  # a whole fenced code block, held as one line


def _word_windows(
    text: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int]]:
    """A sentence still over budget (a word list, minified text: no sentence ends) is cut at
    word boundaries, so no passage outgrows what the embedder reads and a prompt can hold."""
    if count_tokens(text[start:end]) <= budget:
        return [(start, end)]
    windows, first, last, used = [], None, start, 0
    for word in re.finditer(r"\S+", text[start:end]):
        cost = count_tokens(word.group(0))
        if first is not None and used + cost > budget:
            windows.append((first, last))
            first, used = None, 0
        if first is None:
            first = start + word.start()
        last, used = start + word.end(), used + cost
    if first is not None:
        windows.append((first, last))
    return windows


def _code_windows(
    text: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int, bool]]:
    windows: list[tuple[int, int, bool]] = []
    first, last, used = None, start, 0
    for m in re.finditer(r"[^\n]+", text[start:end]):
        s, e = start + m.start(), start + m.end()
        cost = count_tokens(text[s:e])
        if cost > budget:  # one huge line: cut at words
            if first is not None:
                windows.append((first, last, True))
                first, used = None, 0
            windows.extend((a, b, True) for a, b in _word_windows(text, s, e, budget, count_tokens))
            continue
        if first is not None and used + cost > budget:
            windows.append((first, last, True))
            first, used = None, 0
        if first is None:
            first = s
        last, used = e, used + cost
    if first is not None:
        windows.append((first, last, True))
    return windows


def pack(
    text: str, lines: list[Line], budget: int, overlap: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int, str]]:
    """Greedy packing of paragraphs (sentences, for long ones) into spans under `budget`."""
    plain_count = count_tokens
    counted: dict[str, int] = {}

    def count_tokens(piece: str) -> int:  # the packing below counts the same units again
        if piece not in counted:
            counted[piece] = plain_count(piece)
        return counted[piece]

    units: list[tuple[int, int, bool]] = []  # (start, end, is_code)
    for line in lines:
        stripped_start = line.start + len(line.text) - len(line.text.lstrip())
        end = line.start + len(line.text.rstrip())
        is_code = line.code or bool(CODE_LINE.match(line.text))
        if line.code and count_tokens(text[stripped_start:end]) > budget:
            # A long block splits between its lines, never inside a statement's line.
            units.extend(_code_windows(text, stripped_start, end, budget, count_tokens))
            continue
        glue = units and (
            is_code  # a code block belongs to the prose that introduces it
            or LABEL.match(line.text)  # "Strengths: …" continues the paragraph above
            or text[units[-1][1] - 1] == ":"  # a lead-in ("… consists of:") binds to what follows
        )
        if glue:
            units[-1] = (units[-1][0], end, units[-1][2] and is_code)
        elif count_tokens(text[stripped_start:end]) > budget:
            for s, e in sentence_spans(text, stripped_start, end):
                units.extend(
                    (ws, we, False) for ws, we in _word_windows(text, s, e, budget, count_tokens)
                )
        else:
            units.append((stripped_start, end, is_code))

    chunks: list[tuple[int, int, str]] = []
    current: list[tuple[int, int, bool]] = []

    def size(items) -> int:
        return sum(count_tokens(text[s:e]) for s, e, _ in items)

    for unit in units:
        if current and size(current) + count_tokens(text[unit[0] : unit[1]]) > budget:
            chunks.append(
                (current[0][0], current[-1][1], "code" if all(c for *_, c in current) else "prose")
            )
            tail = current[-1]
            carried: list[tuple[int, int, bool]] = []
            if overlap and not tail[2]:
                last_sentences = sentence_spans(text, tail[0], tail[1])[-overlap:]
                # A "Limitations: …" line closes its section: carried over, it would read as
                # the first fact about the next topic.
                # A code line (the end of an example glued to its prose) is no sentence to
                # repeat.
                carry = [
                    (s, e, False)
                    for s, e in last_sentences
                    if not LABEL.match(text[s:e]) and not CODE_LINE.match(text[s:e])
                ]
                # A sentence of overlap, unless it would push the next passage over budget.
                if (
                    carry
                    and size(carry) <= budget // 3
                    and size(carry) + count_tokens(text[unit[0] : unit[1]]) <= budget
                ):
                    carried = carry
            current = carried
        current.append(unit)
    if current:
        chunks.append(
            (current[0][0], current[-1][1], "code" if all(c for *_, c in current) else "prose")
        )
    return chunks
