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

from rag.judge import EntailmentJudge
from rag.prompt import Prompt
from rag.sentences import sentence_spans
from rag.types import Citation
from rag.verify import Verifier

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_LETTER = re.compile(r"[^\W\d_]")
# A fenced code block in an answer, closed or still arriving: one unit, never split into lines.
_CODE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(?:.*?^[ \t]*\1[ \t]*$|.*\Z)", re.M | re.S)
# A line that only comments, in the languages manuals show (shell, Python, C, SQL, Lisp).
_COMMENT = re.compile(r"^\s*(#|//|--|;|/\*|\*|<!--)")


def is_code(unit: str) -> bool:
    return unit.lstrip().startswith(("```", "~~~"))


def code_statements(block: str) -> list[str]:
    """The statements of a fenced block: its lines without the fences, blank lines and lines
    that only comment, each without whitespace (so indentation and spacing do not count)."""
    lines = block.strip().splitlines()[1:]
    if lines and lines[-1].strip() in ("```", "~~~"):
        lines = lines[:-1]
    return [re.sub(r"\s+", "", ln) for ln in lines if ln.strip() and not _COMMENT.match(ln)]


# A line of code written without a fence, as small models copy a passage's unfenced sample: an
# assignment, a call written against its name, a statement ending in a brace or semicolon, a
# shell or REPL prompt; and no full stop at its end, which prose has.
_CODE_LINE = re.compile(r"\w\s*[-+*/]?=\s*\S|\w\(.*\)|[{};]\s*$|^\s*(\$|>>>) ")
_LINE_MARKERS = re.compile(r"\s+\[(\d+(?:\s*,\s*\d+)*)\]\s*$")


_PROSE_LINE = re.compile(r"^\s*([-*•]|\d+[.)])\s|`")  # a list item, inline code: prose


def _code_line(line: str) -> bool:
    bare = _LINE_MARKERS.sub("", line).rstrip()
    return (
        bool(bare)
        and bare[-1] not in ".!?"
        and not _PROSE_LINE.search(bare)
        and bool(_CODE_LINE.search(bare))
    )


def answer_spans(text: str) -> list[tuple[int, int]]:
    """The units an answer is checked in: its sentences, and each code block whole, fenced
    or a run of code lines."""
    spans, pos = [], 0
    for m in _CODE.finditer(text):
        spans += _prose_and_code_lines(text, pos, m.start())
        spans.append((m.start() + len(m.group(0)) - len(m.group(0).lstrip()), m.end()))
        pos = m.end()
    return spans + _prose_and_code_lines(text, pos, len(text))


def _prose_and_code_lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos, run = [], start, None
    for line in re.finditer(r"[^\n]+", text[start:end]):
        a, b = start + line.start(), start + line.end()
        if _code_line(line.group(0)):
            if run is None:
                spans += sentence_spans(text, pos, a)
                run = a
            pos = b
        elif run is not None:
            spans.append((run, pos))
            run = None
    if run is not None:
        spans.append((run, pos))
    return spans + sentence_spans(text, pos, end)


def _unfenced(text: str, a: int, b: int) -> bool:
    return not is_code(text[a:b]) and all(_code_line(ln) for ln in text[a:b].splitlines())


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
    for a, b in answer_spans(text):
        if is_code(text[a:b]):
            # Verbatim: "x[1]" inside code is an index, not a marker; its markers follow it.
            out.append((text[a:b].rstrip(), []))
            continue
        if _unfenced(text, a, b):
            # Fenced from here on, so the check, the page and the JSON treat it as code; only
            # a marker set apart at a line's end is a citation.
            lines = text[a:b].splitlines()
            cited = [
                int(n)
                for ln in lines
                for group in _LINE_MARKERS.findall(ln)
                for n in re.split(r"\s*,\s*", group)
            ]
            code = "\n".join(_LINE_MARKERS.sub("", ln) for ln in lines)
            out.append(("```\n" + code + "\n```", list(dict.fromkeys(cited))))
            continue
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
    spans = answer_spans(streamed)
    if len(spans) >= 2 and _LETTER.search(streamed[spans[-1][0] :]):
        # A run of code lines ends only at a whole line that is not code: "out" may yet
        # become "output = …".
        if _unfenced(streamed, *spans[-2]) and "\n" not in streamed[spans[-1][0] :]:
            return spans[-3][1] if len(spans) >= 3 else None
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
        if is_code(sentence):
            return dict(record, **self._code(sentence, valid))
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

    def _code(self, block: str, cited: list[int]) -> dict:
        """A code block is kept only when one passage holds every statement of it, whitespace
        aside: code the model wrote from its own knowledge is not the documents' however
        plausible, and its comment lines are not claims to cite one by one."""
        statements = code_statements(block)
        if not statements:
            return {"kept": [], "verdict": "code without statements"}
        order = cited + [n for n in range(1, len(self.prompt.hits) + 1) if n not in cited]
        for n in order:
            hit = self.prompt.hits[n - 1]
            held = re.sub(r"\s+", "", hit.text)
            if all(st in held for st in statements):
                return {"kept": [n], "verdict": "supported" if n in cited else "moved"}
        return {"kept": [], "verdict": "code not in the passages"}

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
        """The sentence as shown, its markers renumbered and placed before its full stop; a
        code block on lines of its own with its markers on the line after it."""
        nums = []
        for n in kept:
            self.numbers.setdefault(n, len(self.numbers) + 1)
            nums.append(self.numbers[n])
            self.supports.setdefault(n, []).append(sentence)
        if is_code(sentence):
            return "\n" + sentence.strip() + "\n" + "".join(f"[{m}]" for m in sorted(set(nums)))
        body = sentence.rstrip()
        end = body[-1] if body and body[-1] in ".!?" else ""
        body = body[:-1] if end else body
        return body + "".join(f" [{m}]" for m in sorted(set(nums))) + (end or ".")

    def citations(self) -> list[Citation]:
        return [
            Citation(n=num, hit=self.prompt.hits[p - 1], supports=self.supports.get(p, []))
            for p, num in sorted(self.numbers.items(), key=lambda kv: kv[1])
        ]
