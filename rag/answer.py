"""Generate, then verify: every sentence and its `[n]` are checked as the answer streams.

Each settled sentence goes to the checks of rag/verify.py. The lexical pass finds the passage
it rests on (moving a marker that points at the wrong one) and, by default, decides. With the
entailment judge on (`judge_citations`), the lexical pass only proposes, and the judge decides
whether that passage, or the one the model cited, states the sentence. A sentence no passage
supports is dropped; an answer left with no sentence becomes the refusal. Generation waits
while a sentence is judged, so verified sentences still stream before the answer ends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from rag.prompt import NOT_FOUND, build_prompt, is_injection
from rag.types import Answer, Citation, Hit
from rag.verify import EntailmentJudge, Verifier

REFUSAL = "The documents I have do not answer this question, so I won't guess."
REFUSAL_INJECTION = (
    "I only answer questions from the indexed documents, "
    "and I don't follow instructions to ignore them."
)

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_SENT_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+(?:\s*,\s*\d+)*\])*(?=\s+|$)|\n+")
_REFUSAL_HINTS = re.compile(
    r"not in (the )?documents|passages do not|passages don't|"
    r"does not (mention|contain|say|provide)|"
    r"do not (mention|contain|provide)|no information|not (mentioned|provided|specified|stated)|"
    r"cannot answer|can't answer|"
    r"i don't know|i do not know|unable to (answer|find)",
    re.I,
)


_ABBREVIATIONS = {
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "st",
    "vs",
    "al",
    "etc",
    "eg",
    "ie",
    "fig",
    "no",
    "jr",
    "sr",
    "inc",
    "approx",
}


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at `dot` ends an abbreviation ("Dr.", "et al.", "e.g.") or an
    initial."""
    word = re.search(r"([A-Za-z.]+)$", text[:dot])
    if not word:
        return False
    w = word.group(1).lower().replace(".", "")
    return w in _ABBREVIATIONS or (len(w) == 1 and word.group(1)[-1].isupper())


def sentence_ends(text: str) -> list[int]:
    """Where sentences end (after any markers that follow them), abbreviations excepted."""
    ends = []
    for match in _SENT_END.finditer(text):
        dot = match.start()
        if match.group(0) == "" and text[dot - 1 : dot] == "." and _is_abbreviation(text, dot - 1):
            continue
        ends.append(match.end())
    return ends


def settled_end(streamed: str) -> int | None:
    """Where the complete sentences of a text still streaming end, or None. A tail of only
    spaces, brackets and digits may be the marker of the last sentence ("… videos. [1]"),
    still arriving, so that sentence waits for the next word."""
    ends = sentence_ends(streamed)
    if ends and re.search(r"[^\W\d_]", streamed[ends[-1] :]):
        return ends[-1]
    return None


def split_sentences(text: str) -> Iterator[tuple[str, list[int]]]:
    """(sentence without markers, the markers that follow or sit inside it). A piece holding
    nothing but markers ("… problem [1]. [2].") belongs to the sentence before it."""
    pieces, pos = [], 0
    for end in sentence_ends(text):
        pieces.append(text[pos:end])
        pos = end
    pieces.append(text[pos:])
    out: list[tuple[str, list[int]]] = []
    for piece in pieces:
        if not piece.strip():
            continue
        sentence, cited = _strip_markers(piece)
        if not re.search(r"\w", sentence):
            if out:
                out[-1] = (out[-1][0], out[-1][1] + [c for c in cited if c not in out[-1][1]])
            continue
        out.append((sentence, cited))
    yield from out


def _strip_markers(piece: str) -> tuple[str, list[int]]:
    cited = [int(n) for group in _MARKER.findall(piece) for n in re.split(r"\s*,\s*", group)]
    clean = _MARKER.sub("", piece).strip()
    clean = re.sub(r"\s+([.!?,;:])", r"\1", clean)
    clean = re.sub(r"\.\.$", ".", clean)
    return clean, cited


@dataclass
class Event:
    kind: str  # "token" (raw model output), "sentence" (verified, with final markers), "done"
    text: str = ""
    answer: Answer | None = None


class Answerer:
    def __init__(self, llm, settings, dense=None, sparse=None, judge_llm=None):
        """`judge_llm`: the model on a context of its own for the entailment judge, given when
        the settings ask for it (RagApp decides); None leaves the lexical check alone."""
        self.llm = llm
        self.judge_llm = judge_llm
        self.settings = settings
        self.dense = dense
        self.sparse = sparse

    def stream(
        self,
        question: str,
        hits: list[Hit],
        retrieve_ms: int,
        mode: str,
        history: list[dict] | None = None,
        standalone: str = "",
        started: float | None = None,
        expansion: str = "",
        expand_ms: int | None = None,
    ) -> Iterator[Event]:
        s = self.settings
        started = started or time.perf_counter()
        # "expand": the LLM writing the expansion; "retrieve": everything else before the prompt.
        timings = {"retrieve": retrieve_ms} | (
            {"expand": expand_ms} if expand_ms is not None else {}
        )

        def finish(
            text: str,
            abstained: bool,
            citations: list[Citation],
            raw: str = "",
            checks: dict | None = None,
        ) -> Event:
            timings["total"] = int((time.perf_counter() - started) * 1000)
            timings.setdefault("first_token", timings["total"])
            return Event(
                "done",
                answer=Answer(
                    question=question,
                    answer=text,
                    abstained=abstained,
                    citations=citations,
                    passages=hits,
                    mode=mode,
                    model=self.llm.name,
                    timings_ms=timings,
                    standalone_question=standalone,
                    expansion=expansion,
                    raw_answer=raw,
                    checks=checks or {},
                ),
            )

        asked = standalone or question
        if is_injection(question) or is_injection(asked):
            yield Event("sentence", REFUSAL_INJECTION)
            yield finish(
                REFUSAL_INJECTION,
                True,
                [],
                checks={"refused": "instruction to ignore the documents"},
            )
            return
        best = max((h.relevance for h in hits), default=0.0)
        if best < s.min_relevance:
            yield Event("sentence", REFUSAL)
            yield finish(
                REFUSAL,
                True,
                [],
                checks={
                    "refused": f"no passage relevant enough (best {best:.2f} < {s.min_relevance})"
                },
            )
            return

        context = hits[: s.context_passages]
        prompt = build_prompt(
            asked, context, self.llm.count_chat_tokens, self.llm.n_ctx, s.max_tokens, history
        )
        terms = (lambda text: set(self.sparse().encode_query(text)[0])) if self.sparse else None
        verifier = Verifier(prompt.hits, self.dense, terms)
        checks = {
            "prompt_tokens": prompt.tokens,
            "trimmed": prompt.trimmed,
            "dropped": prompt.dropped,
            "sentences": [],
        }

        raw, pending = "", ""
        numbering: dict[int, int] = {}  # prompt passage → citation number in the answer
        supports: dict[int, list[str]] = {}
        kept_text: list[str] = []

        judge = (
            EntailmentJudge(self.judge_llm, s.judge_threshold)
            if s.verify_citations and self.judge_llm
            else None
        )
        # The judge reads each passage as the answering model was shown it (trimmed, defanged).
        shown = dict(enumerate(prompt.shown, 1))

        def judged(sentence: str, candidates: list[list[int]]) -> tuple[list[int], float | None]:
            """The first candidate set of passages the judge finds to state the sentence; a
            sentence resting on two passages is judged against them together."""
            best = None
            for passages in candidates:
                p = judge.probability("\n".join(shown[n] for n in passages), sentence)
                best = p if best is None else max(best, p)
                if p >= judge.threshold:
                    return passages, p
            return [], best

        def settle(piece: str) -> Iterator[Event]:
            for sentence, cited in split_sentences(piece):
                if NOT_FOUND.lower() in sentence.lower() or _REFUSAL_HINTS.search(sentence):
                    checks["sentences"].append({"text": sentence, "verdict": "model declined"})
                    continue
                record: dict = {"text": sentence, "cited": cited}
                if not s.verify_citations:
                    kept = [n for n in cited if 1 <= n <= len(prompt.hits)]
                    reason = "unchecked"
                else:
                    v = verifier.check(sentence, cited, asked)
                    kept, reason = v.kept, v.reason
                    if judge is not None:
                        # The lexical pass proposes where the sentence rests (it re-cites by
                        # shared words); the model's own reading decides whether it is stated.
                        valid = sorted({n for n in cited if 1 <= n <= len(prompt.hits)})
                        candidates = [c for c in (kept, valid) if c]
                        candidates = [
                            c for i, c in enumerate(candidates) if c not in candidates[:i]
                        ]
                        lexical = reason
                        kept, prob = judged(sentence, candidates) if candidates else ([], None)
                        record.update(
                            lexical=lexical, judge=None if prob is None else round(prob, 3)
                        )
                        reason = (
                            ("supported" if kept == valid else "moved")
                            if kept
                            else "not stated by its passage"
                        )
                checks["sentences"].append(dict(record, kept=kept, verdict=reason))
                if s.verify_citations and not kept:
                    continue
                nums = []
                for n in kept:
                    numbering.setdefault(n, len(numbering) + 1)
                    nums.append(numbering[n])
                    supports.setdefault(n, []).append(sentence)
                body = sentence.rstrip()
                end = body[-1] if body and body[-1] in ".!?" else ""
                body = body[:-1] if end else body
                marked = body + "".join(f" [{m}]" for m in sorted(set(nums))) + (end or ".")
                kept_text.append(marked)
                yield Event("sentence", marked)

        first = True
        for token in self.llm.chat(
            prompt.messages, max_tokens=s.max_tokens, temperature=s.temperature
        ):
            if first:
                timings["first_token"] = int((time.perf_counter() - started) * 1000)
                first = False
            raw += token
            pending += token
            yield Event("token", token)
            # Settle every complete sentence; keep the unfinished tail (and a marker that may
            # follow).
            # While it is checked, generation simply waits: the judge has a context of its own.
            cut = settled_end(pending)
            if cut is not None:
                done, pending = pending[:cut], pending[cut:]
                yield from settle(done)
        if pending.strip():
            yield from settle(pending)

        if not kept_text:
            yield Event("sentence", REFUSAL)
            yield finish(
                REFUSAL,
                True,
                [],
                raw,
                dict(checks, refused="no sentence of the answer is supported by a passage"),
            )
            return
        citations = [
            Citation(n=num, hit=prompt.hits[p - 1], supports=supports.get(p, []))
            for p, num in sorted(numbering.items(), key=lambda kv: kv[1])
        ]
        yield finish(" ".join(kept_text), False, citations, raw, checks)
