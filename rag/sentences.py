"""Where sentences begin and end: the one splitter every stage uses (chunking long paragraphs,
trimming passages for the prompt, the checker's windows, settling a streamed answer, marking
the backing sentence on the page), so they all agree on a boundary.

Boundaries come from sentencex, Wikimedia's rule-based segmenter: it knows abbreviations
("e.g.", "et al.", "Dr."), numbers ("3.2.1") and keeps a citation marker that follows a full
stop ("… videos. [1]") with its sentence. It is applied line by line, because a line break in
a document or an answer (a list item, a table row, a heading) ends what it holds, except in
a document whose paragraphs are wrapped at a fixed width (a manual's HTML keeps its source
lines): read with `wrapped=True`, a line that stops mid-sentence continues on the next.
"""

from __future__ import annotations

import re

import sentencex

_LINE = re.compile(r"[^\n]+")


# A wrapped line: it stops mid-sentence, on a word in lower case, a number or a comma, and the
# next line, right below it, carries on in lower case, with a path or an option, or in
# brackets or quotes. A list item ("- ", "* ", "1.") or a table row (tabs; or cells such as
# "[auto]", "V:62," that a PDF's table leaves on lines of their own) starts afresh.
_OPEN_END = re.compile(r"[a-z0-9,]\s*$")
_CARRIES_ON = re.compile(r"\s*(?:[a-z~/$(\"'‘“`]|-{1,2}[A-Za-z])")


def _lines(text: str, start: int, end: int, wrapped: bool) -> list[tuple[int, int]]:
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text, start, end)]
    if not wrapped:
        return lines
    joined: list[tuple[int, int]] = []
    for a, z in lines:
        if joined:
            pa, pz = joined[-1]
            if (
                a == pz + 1
                and "\t" not in text[pa:z]
                and _OPEN_END.search(text, pa, pz)
                and _CARRIES_ON.match(text, a, z)
            ):
                joined[-1] = (pa, z)
                continue
        joined.append((a, z))
    return joined


def sentence_spans(
    text: str, start: int = 0, end: int | None = None, wrapped: bool = False
) -> list[tuple[int, int]]:
    """(start, end) offsets into `text` of each sentence of text[start:end], in order, without
    the whitespace around it; blank pieces are left out. `wrapped`: the text is a document
    whose lines may be wrapped (see above)."""
    end = len(text) if end is None else end
    spans = []
    for a0, z0 in _lines(text, start, end, wrapped):
        # A joined line is read with its breaks as spaces: same length, same offsets.
        line = text[a0:z0].replace("\n", " ")
        offset, open_code = a0, False
        for b in sentencex.get_sentence_boundaries("en", line):
            a, z = offset + b["start_index"], offset + b["end_index"]
            piece = text[a:z]
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                if open_code and spans:
                    # No boundary inside inline code: "`./install.sh`" is one piece.
                    spans[-1] = (spans[-1][0], a + lead + len(stripped))
                else:
                    spans.append((a + lead, a + lead + len(stripped)))
            open_code ^= piece.count("`") % 2 == 1
    return spans


def sentences(text: str, wrapped: bool = False) -> list[str]:
    """The sentences of `text`, each verbatim, whitespace around them dropped."""
    return [text[a:b] for a, b in sentence_spans(text, wrapped=wrapped)]
