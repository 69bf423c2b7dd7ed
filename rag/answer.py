"""Generate, then verify: every sentence and its `[n]` are checked as the answer streams.

This module only streams: whether to answer at all is rag/policy.py's, how a sentence is
checked and numbered is rag/citations.py's. Each sentence is checked once it is complete; a
sentence no passage supports is dropped, and an answer left with no sentence becomes the
refusal. Generation waits while a sentence is judged, so verified sentences still stream
before the answer ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from rag.citations import CitationCheck, Numbering, cited_sentences, settled_end
from rag.judge import EntailmentJudge
from rag.policy import NOTHING_SUPPORTED, REFUSAL, declines, refusal_before_answer
from rag.prompt import build_prompt
from rag.types import Answer, Citation, Hit
from rag.verify import Verifier


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
        refusal = refusal_before_answer(hits, s.min_relevance)
        if refusal is not None:
            text, reason = refusal
            yield Event("sentence", text)
            yield finish(text, True, [], checks={"refused": reason})
            return

        context = hits[: s.context_passages]
        prompt = build_prompt(
            asked, context, self.llm.count_chat_tokens, self.llm.n_ctx, s.max_tokens
        )
        terms = (lambda text: set(self.sparse().encode_query(text)[0])) if self.sparse else None
        judge = (
            EntailmentJudge(self.judge_llm, s.judge_threshold)
            if s.verify_citations and self.judge_llm
            else None
        )
        checker = CitationCheck(
            prompt, s.verify_citations, Verifier(prompt.hits, self.dense, terms), judge
        )
        numbering = Numbering(prompt)
        checks = {
            "prompt_tokens": prompt.tokens,
            "trimmed": prompt.trimmed,
            "dropped": prompt.dropped,
            "sentences": [],
        }
        raw, pending = "", ""
        kept_text: list[str] = []

        def settle(piece: str) -> Iterator[Event]:
            for sentence, cited in cited_sentences(piece):
                if declines(sentence):
                    checks["sentences"].append({"text": sentence, "verdict": "model declined"})
                    continue
                record = checker.check(sentence, cited, asked)
                checks["sentences"].append(record)
                if s.verify_citations and not record["kept"]:
                    continue
                marked = numbering.mark(sentence, record["kept"])
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
            yield finish(REFUSAL, True, [], raw, dict(checks, refused=NOTHING_SUPPORTED))
            return
        yield finish(" ".join(kept_text), False, numbering.citations(), raw, checks)
