"""Where sentences begin and end: the one splitter every stage uses (chunking long paragraphs,
trimming passages for the prompt, the checker's windows, settling a streamed answer, marking
the backing sentence on the page), so they all agree on a boundary.

Boundaries come from sentencex, Wikimedia's rule-based segmenter: it knows abbreviations
("e.g.", "et al.", "Dr."), numbers ("3.2.1") and keeps a citation marker that follows a full
stop ("… videos. [1]") with its sentence. It is applied line by line, because a line break in
a document or an answer (a list item, a table row, a heading) always ends what it holds.
"""

from __future__ import annotations

import re

import sentencex

_LINE = re.compile(r"[^\n]+")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets into `text` of each sentence of text[start:end], in order, without
    the whitespace around it; blank pieces are left out."""
    end = len(text) if end is None else end
    spans = []
    for line in _LINE.finditer(text, start, end):
        offset, open_code = line.start(), False
        for b in sentencex.get_sentence_boundaries("en", line.group(0)):
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


def sentences(text: str) -> list[str]:
    """The sentences of `text`, each verbatim, whitespace around them dropped."""
    return [text[a:b] for a, b in sentence_spans(text)]
