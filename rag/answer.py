"""Generate, then verify: every `[n]` is checked against its passage as the answer streams.

A sentence is kept only when a passage supports it: its content words are found in the
passage, every number and name in it is found there, or (for paraphrase) its meaning is close
to the passage's. A marker pointing to the wrong passage is moved to the one that supports the
sentence; a sentence nothing supports is dropped. An answer left with no supported sentence
becomes the refusal.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from rag.prompt import NOT_FOUND, build_prompt, is_injection
from rag.types import Answer, Citation, Hit

REFUSAL = "The documents I have do not answer this question, so I won't guess."
REFUSAL_INJECTION = "I only answer questions from the indexed documents, and I don't follow instructions to ignore them."

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_SENT_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+(?:\s*,\s*\d+)*\])*(?=\s+|$)|\n+")
_STOP = set(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that these "
    "those they them their there which who whom whose what when where why how than then so such also can could may might "
    "will would should do does did not no nor only own same too very just about into over under again further once both "
    "each few more most other some any all between through during before after above below up down out off has have had "
    "having i you he she we our your his her my me us one two use used uses using like based often well many much include "
    "includes including according passage passages document documents guide guides".split()
)
_REFUSAL_HINTS = re.compile(
    r"not in (the )?documents|passages do not|passages don't|does not (mention|contain|say|provide)|"
    r"do not (mention|contain|provide)|no information|not (mentioned|provided|specified|stated)|cannot answer|can't answer|"
    r"i don't know|i do not know|unable to (answer|find)",
    re.I,
)


def _stem(word: str) -> str:
    for suffix in ("ingly", "ations", "ation", "ities", "ness", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def key_terms(sentence: str) -> set[str]:
    """Numbers, mid-sentence capitalised names and acronyms ("KL"): facts a model is likely
    to invent. Without the two-letter acronyms, "The KL divergence term is given by
    exp(z_log_var / 2) * epsilon" rested on a sampling snippet that never mentions KL."""
    words = re.findall(r"[A-Za-z0-9]+", sentence)
    keys = {w.lower() for w in words if any(ch.isdigit() for ch in w)}
    keys |= {w.lower() for i, w in enumerate(words) if i > 0 and w[0].isupper() and w.lower() not in _STOP and len(w) > 2}
    keys |= {w.lower() for i, w in enumerate(words) if i > 0 and len(w) == 2 and w.isupper()}
    return keys


@dataclass
class Verdict:
    text: str  # the sentence without markers
    cited: list[int]  # markers the model wrote (1-based, as in the prompt)
    support: list[float]  # per prompt passage
    kept: list[int] = field(default_factory=list)  # passages it rests on after checking
    reason: str = ""


class Verifier:
    def __init__(self, hits: list[Hit], dense=None, terms=None, min_overlap: float = 0.67, min_similarity: float = 0.62):
        self.hits = hits
        self.dense = dense  # () -> DenseEncoder, for meaning-level support; None: words only
        # text -> set of content terms. The BM25 analyser (stop words out, Snowball stems) keeps
        # "databases" and "database" one term, as retrieval does; a crude stemmer is the fallback.
        self.terms = terms or content_words
        self.min_overlap = min_overlap
        self.min_similarity = min_similarity
        texts = [f"{h.context}\n{h.text}" for h in hits]
        self.words = [self.terms(t) for t in texts]
        self.lower = [re.sub(r"\s+", " ", t.lower()) for t in texts]
        # A claim must be found together, within two neighbouring sentences of a passage (with
        # its context), not scattered over it: "100" in a code line and "steps" three
        # sentences later do not make "it takes 100 steps".
        self.windows = []
        for h in hits:
            ctx = self.terms(h.context) if h.context else set()
            parts = [p for p in re.split(r"(?<=[.!?])\s+|\n+", h.text) if p.strip()] or [h.text]
            # The passage's first sentence comes with every window: it names the subject that
            # later lines ("Limitations: mode collapse, …") leave unsaid.
            spans = [" ".join(([parts[0]] if j else []) + parts[j : j + 2]) for j in range(max(1, len(parts) - 1))]
            self.windows.append([(self.terms(w) | ctx, re.sub(r"\s+", " ", w.lower()) + " " + h.context.lower()) for w in spans])
        self._passage_vecs = None
        self._texts = texts
        self._subject: set[str] = set()

    def _similarities(self, sentence: str) -> np.ndarray:
        if self.dense is None:
            return np.zeros(len(self.hits))
        enc = self.dense()
        if self._passage_vecs is None:
            self._passage_vecs = enc.encode(self._texts)
        return self._passage_vecs @ enc.encode_query(sentence)

    def check(self, sentence: str, cited: list[int], question: str = "") -> Verdict:
        """Support of one answer sentence by each passage, and by the passages it cites taken
        together (a sentence may join facts from two). Words the sentence only echoes from
        the question prove nothing, so support is measured on the rest: the claim."""
        asked = self.terms(question) if question else set()
        words = self.terms(re.sub(r"^\s*yes\b[,.!]?", "", sentence, flags=re.I))
        claim = words - asked
        keys = key_terms(sentence) - {k for k in key_terms(question)} if question else key_terms(sentence)
        # Names and numbers the sentence echoes from the question ("DALL-E 3") need not sit in
        # the same window, but the passage must be about them: "trained on a large dataset of
        # images" from a GAN passage does not answer what DALL-E 3 was trained on.
        self._subject = key_terms(sentence) & key_terms(question) if question else set()
        if not claim:
            # "Yes [1]." restates the question: the passage must hold what was asked.
            claim, keys = words | asked, key_terms(question)
        words = words | claim
        n = len(self.hits)
        support = [self._support(claim, words, keys, sentence, [i]) for i in range(n)]
        v = Verdict(sentence, cited, support)
        valid = sorted({c for c in cited if 1 <= c <= n})
        if valid and self._support(claim, words, keys, sentence, [c - 1 for c in valid]) >= self.min_overlap:
            # Keep the cited passages that contribute to the claim.
            v.kept = [c for c in valid if claim & self.words[c - 1] or len(valid) == 1] or valid
            v.reason = "supported"
            return v
        ok = [i + 1 for i, sc in enumerate(support) if sc >= self.min_overlap]
        if ok:
            v.kept, v.reason = [max(ok, key=lambda c: support[c - 1])], "moved" if cited else "added"
        else:
            v.reason = "unsupported"
        return v

    def _support(self, claim: set, sentence_words: set, keys: set[str], sentence: str, idx: list[int]) -> float:
        if not claim:
            return 0.0
        whole = " ".join(self.lower[i] for i in idx)
        if not all(_mentions(whole, k) for k in self._subject):
            return 0.0
        if len(idx) == 1:
            # The best window of the passage.
            return max(self._score(claim, sentence_words, keys, sentence, idx[0], w, low) for w, low in self.windows[idx[0]])
        words = set().union(*(self.words[i] for i in idx))
        lower = " ".join(self.lower[i] for i in idx)
        return self._score(claim, sentence_words, keys, sentence, None, words, lower)

    def _score(self, claim, sentence_words, keys, sentence, i, words: set, lower: str) -> float:
        # A number inside code ("max_tokens=100") is not a stated fact.
        if not all(_mentions(lower, k) for k in keys):
            return 0.0
        overlap = len(claim & words) / len(claim)
        # The passage must also be about what the sentence is about, not merely share the
        # one new word (a "100" in a code sample does not answer "how many steps").
        topical = len(sentence_words & words) / len(sentence_words)
        if topical < 0.4:
            overlap = min(overlap, topical)
        if overlap < self.min_overlap and i is not None and self.dense is not None and topical >= 0.4:
            # Paraphrase: close in meaning to the passage although worded differently.
            sim = float(self._similarities(sentence)[i])
            if sim >= self.min_similarity:
                return max(overlap, sim)
        return overlap


def _mentions(lower_text: str, key: str) -> bool:
    # Whole words only, and not inside code: a number in "max_tokens=100" is not a stated fact.
    return re.search(r"(?<![a-z0-9_=])" + re.escape(key) + r"(?![a-z0-9_=])", lower_text) is not None


_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "prof", "st", "vs", "al", "etc", "eg", "ie", "fig", "no", "jr", "sr", "inc", "approx"}


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at `dot` ends an abbreviation ("Dr.", "et al.", "e.g.") or an initial."""
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
    if ends and re.search(r"[^\W\d_]", streamed[ends[-1]:]):
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
    def __init__(self, llm, settings, dense=None, sparse=None):
        self.llm = llm
        self.settings = settings
        self.dense = dense
        self.sparse = sparse

    def stream(self, question: str, hits: list[Hit], retrieve_ms: int, mode: str,
               history: list[dict] | None = None, standalone: str = "", started: float | None = None,
               expansion: str = "", expand_ms: int | None = None) -> Iterator[Event]:
        s = self.settings
        started = started or time.perf_counter()
        # "expand": the LLM writing the expansion; "retrieve": everything else before the prompt.
        timings = {"retrieve": retrieve_ms} | ({"expand": expand_ms} if expand_ms is not None else {})

        def finish(text: str, abstained: bool, citations: list[Citation], raw: str = "", checks: dict | None = None) -> Event:
            timings["total"] = int((time.perf_counter() - started) * 1000)
            timings.setdefault("first_token", timings["total"])
            return Event("done", answer=Answer(
                question=question, answer=text, abstained=abstained, citations=citations, passages=hits,
                mode=mode, model=self.llm.name, timings_ms=timings, standalone_question=standalone,
                expansion=expansion, raw_answer=raw, checks=checks or {},
            ))

        asked = standalone or question
        if is_injection(question) or is_injection(asked):
            yield Event("sentence", REFUSAL_INJECTION)
            yield finish(REFUSAL_INJECTION, True, [], checks={"refused": "instruction to ignore the documents"})
            return
        best = max((h.relevance for h in hits), default=0.0)
        if best < s.min_relevance:
            yield Event("sentence", REFUSAL)
            yield finish(REFUSAL, True, [], checks={"refused": f"no passage relevant enough (best {best:.2f} < {s.min_relevance})"})
            return

        context = hits[: s.context_passages]
        prompt = build_prompt(asked, context, self.llm.count_chat_tokens, self.llm.n_ctx, s.max_tokens, history)
        terms = (lambda text: set(self.sparse().encode_query(text)[0])) if self.sparse else None
        verifier = Verifier(prompt.hits, self.dense, terms)
        checks = {"prompt_tokens": prompt.tokens, "trimmed": prompt.trimmed, "dropped": prompt.dropped, "sentences": []}

        raw, pending = "", ""
        numbering: dict[int, int] = {}  # prompt passage → citation number in the answer
        supports: dict[int, list[str]] = {}
        kept_text: list[str] = []

        def settle(piece: str) -> Iterator[Event]:
            for sentence, cited in split_sentences(piece):
                if NOT_FOUND.lower() in sentence.lower() or _REFUSAL_HINTS.search(sentence):
                    checks["sentences"].append({"text": sentence, "verdict": "model declined"})
                    continue
                if not s.verify_citations:
                    kept = [n for n in cited if 1 <= n <= len(prompt.hits)]
                    reason = "unchecked"
                else:
                    v = verifier.check(sentence, cited, asked)
                    kept, reason = v.kept, v.reason
                checks["sentences"].append({"text": sentence, "cited": cited, "kept": kept, "verdict": reason})
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
        for token in self.llm.chat(prompt.messages, max_tokens=s.max_tokens, temperature=s.temperature):
            if first:
                timings["first_token"] = int((time.perf_counter() - started) * 1000)
                first = False
            raw += token
            pending += token
            yield Event("token", token)
            # Settle every complete sentence; keep the unfinished tail (and a marker that may follow).
            cut = settled_end(pending)
            if cut is not None:
                done, pending = pending[:cut], pending[cut:]
                yield from settle(done)
        if pending.strip():
            yield from settle(pending)

        if not kept_text:
            yield Event("sentence", REFUSAL)
            yield finish(REFUSAL, True, [], raw, dict(checks, refused="no sentence of the answer is supported by a passage"))
            return
        citations = [
            Citation(n=num, hit=prompt.hits[p - 1], supports=supports.get(p, []))
            for p, num in sorted(numbering.items(), key=lambda kv: kv[1])
        ]
        yield finish(" ".join(kept_text), False, citations, raw, checks)
