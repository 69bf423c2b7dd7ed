"""Citations: the `[n]` markers a model writes, the check of each sentence against the
passages, and the numbering of what survives (the passage sentences that back each one are
rag/highlights.py's).

The lexical pass (rag/verify.py `Verifier`) finds the passage a sentence rests on, moving a
marker that points at the wrong one, and by default decides. With the entailment judge on,
the lexical pass only proposes, and the judge decides whether that passage, or the one the
model cited, states the sentence.
"""

from __future__ import annotations

import re

from rag.prompt import Prompt
from rag.sentences import sentence_spans
from rag.types import Citation
from rag.verify import EntailmentJudge, Verifier

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_LETTER = re.compile(r"[^\W\d_]")


def strip_markers(piece: str) -> tuple[str, list[int]]:
    """(the text without its markers, the passage numbers they name, in order)."""
    cited = [int(n) for group in _MARKER.findall(piece) for n in re.split(r"\s*,\s*", group)]
    clean = _MARKER.sub("", piece).strip()
    clean = re.sub(r"\s+([.!?,;:])", r"\1", clean)
    clean = re.sub(r"\.\.$", ".", clean)
    return clean, cited


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, the markers that follow or sit inside it). A piece holding
    nothing but markers ("… problem [1]. [2].") belongs to the sentence before it."""
    out: list[tuple[str, list[int]]] = []
    for a, b in sentence_spans(text):
        sentence, cited = strip_markers(text[a:b])
        if not re.search(r"\w", sentence):
            if out:
                out[-1] = (out[-1][0], out[-1][1] + [c for c in cited if c not in out[-1][1]])
            continue
        out.append((sentence, cited))
    return out


def settled_end(streamed: str) -> int | None:
    """Where the complete sentences of a text still streaming end, or None. The last
    sentence may still be arriving, and so may a marker after it ("… videos. [1"): what comes
    before it is settled once it holds a word."""
    spans = sentence_spans(streamed)
    if len(spans) >= 2 and _LETTER.search(streamed[spans[-1][0] :]):
        return spans[-2][1]
    return None


class CitationCheck:
    """Checks the sentences of one answer against the passages its prompt showed."""

    def __init__(
        self, prompt: Prompt, verify: bool, verifier: Verifier, judge: EntailmentJudge | None
    ):
        self.prompt, self.verify, self.verifier, self.judge = prompt, verify, verifier, judge
        # The judge reads each passage as the answering model was shown it (trimmed).
        self.shown = dict(enumerate(prompt.shown, 1))

    def check(self, sentence: str, cited: list[int], question: str) -> dict:
        """The record of one sentence: what it cited, the passages kept for it (none: drop it)
        and the verdict."""
        record: dict = {"text": sentence, "cited": cited}
        valid = sorted({n for n in cited if 1 <= n <= len(self.prompt.hits)})
        if not self.verify:
            return dict(
                record,
                kept=[n for n in cited if 1 <= n <= len(self.prompt.hits)],
                verdict="unchecked",
            )
        v = self.verifier.check(sentence, cited, question)
        kept, reason = v.kept, v.reason
        if kept and not self.verifier.about_question(sentence, question):
            return dict(record, kept=[], verdict="not about the question")
        if self.judge is not None:
            # The lexical pass proposes where the sentence rests (it re-cites by shared
            # words); the model's own reading decides whether it is stated.
            candidates = [c for c in (kept, valid) if c]
            candidates = [c for i, c in enumerate(candidates) if c not in candidates[:i]]
            kept, prob = self._judged(sentence, candidates) if candidates else ([], None)
            record.update(lexical=reason, judge=None if prob is None else round(prob, 3))
            reason = (
                ("supported" if kept == valid else "moved") if kept else "not stated by its passage"
            )
        return dict(record, kept=kept, verdict=reason)

    def _judged(self, sentence: str, candidates: list[list[int]]) -> tuple[list[int], float | None]:
        """The first candidate set of passages the judge finds to state the sentence; a
        sentence resting on two passages is judged against them together."""
        best = None
        for passages in candidates:
            p = self.judge.probability("\n".join(self.shown[n] for n in passages), sentence)
            best = p if best is None else max(best, p)
            if p >= self.judge.threshold:
                return passages, p
        return [], best


class Numbering:
    """Answer citations numbered in order of first use, whatever the prompt's numbering."""

    def __init__(self, prompt: Prompt):
        self.prompt = prompt
        self.numbers: dict[int, int] = {}  # prompt passage → citation number in the answer
        self.supports: dict[int, list[str]] = {}

    def mark(self, sentence: str, kept: list[int]) -> str:
        """The sentence as shown, its markers renumbered and placed before its full stop."""
        nums = []
        for n in kept:
            self.numbers.setdefault(n, len(self.numbers) + 1)
            nums.append(self.numbers[n])
            self.supports.setdefault(n, []).append(sentence)
        body = sentence.rstrip()
        end = body[-1] if body and body[-1] in ".!?" else ""
        body = body[:-1] if end else body
        return body + "".join(f" [{m}]" for m in sorted(set(nums))) + (end or ".")

    def citations(self) -> list[Citation]:
        return [
            Citation(n=num, hit=self.prompt.hits[p - 1], supports=self.supports.get(p, []))
            for p, num in sorted(self.numbers.items(), key=lambda kv: kv[1])
        ]
