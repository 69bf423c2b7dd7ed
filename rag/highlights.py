"""Which sentence of a cited passage backs each answer sentence that rests on it: the page
marks those, so a reader sees the evidence without reading the whole passage."""

from __future__ import annotations

import re

from rag.sentences import sentence_spans

_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    "a an the and or but of to in on at by for with from as is are was were be been it its this "
    "that these those they them their which who what when where how than then so such also can "
    "may will would do does did not no has have had i you he she we one".split()
)


def _words(text: str) -> set[str]:
    return {
        w[:-1] if len(w) > 4 and w.endswith("s") else w
        for w in _WORD.findall(text.lower())
        if w not in _STOP
    }


def backing_spans(passage: str, supports: list[str], min_overlap: float = 0.34) -> list[list[int]]:
    """(start, end) in the passage of the sentence that backs each supporting answer
    sentence: the one sharing most of its words, if it shares at least `min_overlap` of them."""
    spans = sentence_spans(passage or "", wrapped=True)
    marked: set[int] = set()
    for support in supports or []:
        want = _words(support)
        if not want:
            continue
        scored = [
            (len(want & _words(passage[a:b])) / len(want), i) for i, (a, b) in enumerate(spans)
        ]
        best = max(scored, default=(0.0, -1))
        if best[0] >= min_overlap:
            marked.add(best[1])
    return [list(spans[i]) for i in sorted(marked)]
