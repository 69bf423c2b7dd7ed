"""Does this passage state this sentence, and is the sentence about the question?

The lexical check (`Verifier`): word overlap, names, numbers, paths and settings, and a
MiniLM similarity, measured on the labelled claim set (`rag eval --claims`, eval/claims.md).
Fast, and blind to meaning: "faster" and "slower" share every other word, and "not" is a
stop word, so rag/alignment.py vetoes what the words hide. It also re-cites a sentence to the
passage that shares its words. The model as a judge, opt-in, is rag/judge.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rag.alignment import conflict
from rag.sentences import sentences
from rag.types import Hit
from rag.words import STOP as _STOP
from rag.words import acronyms, code_tokens, content_words, contract_acronyms

ABOUT_QUESTION = 0.12


def key_terms(sentence: str) -> set[str]:
    """Numbers, mid-sentence capitalised names and acronyms ("KL"): facts a model is likely
    to invent. Without the two-letter acronyms, "The KL divergence term is given by
    exp(z_log_var / 2) * epsilon" rested on a sampling snippet that never mentions KL. A
    path, option or setting is one key as written (code_terms), not the pieces inside it:
    the "BR" of "pt_BR" and the "0" of "NCURSES_NO_UTF8_ACS=0" are no name or number of
    their own."""
    code = list(code_tokens(sentence))
    prose = sentence
    for begin, end, _ in reversed(code):
        prose = prose[:begin] + " " * (end - begin) + prose[end:]
    words = re.findall(r"[A-Za-z0-9]+", prose)
    keys = {w.lower() for w in words if any(ch.isdigit() for ch in w)}
    keys |= {
        w.lower()
        for i, w in enumerate(words)
        if i > 0 and w[0].isupper() and w.lower() not in _STOP and len(w) > 2
    }
    keys |= {w.lower() for i, w in enumerate(words) if i > 0 and len(w) == 2 and w.isupper()}
    return keys | {key for _, _, key in code}


@dataclass
class Verdict:
    text: str  # the sentence without markers
    cited: list[int]  # markers the model wrote (1-based, as in the prompt)
    support: list[float]  # per prompt passage
    kept: list[int] = field(default_factory=list)  # passages it rests on after checking
    reason: str = ""


class Verifier:
    def __init__(
        self,
        hits: list[Hit],
        dense=None,
        terms=None,
        # Two of every three claim words, two-thirds itself included: at 0.67 a sentence
        # holding six of its nine words in the passage failed by the rounding (claim set,
        # dev split: false rejects 12.1 % at 0.67, 9.5 % at 2/3; false accepts 32.8 %, 33.6 %).
        min_overlap: float = 2 / 3,
        min_similarity: float = 0.62,
    ):
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
            parts = sentences(h.text, wrapped=True) or [h.text]
            # The passage's first sentence comes with every window: it names the subject that
            # later lines ("Limitations: mode collapse, …") leave unsaid.
            spans = [
                " ".join(([parts[0]] if j else []) + parts[j : j + 2])
                for j in range(max(1, len(parts) - 1))
            ]
            self.windows.append(
                [
                    (self.terms(w) | ctx, re.sub(r"\s+", " ", w.lower()) + " " + h.context.lower())
                    for w in spans
                ]
            )
        self._passage_vecs = None
        self._acronyms = acronyms(" ".join(texts))
        self._lower_all = " ".join(self.lower)
        self._question_vecs: dict[str, np.ndarray] = {}
        self._texts = texts
        self._subject: set[str] = set()

    def _similarities(self, sentence: str) -> np.ndarray:
        if self.dense is None:
            return np.zeros(len(self.hits))
        enc = self.dense()
        if self._passage_vecs is None:
            self._passage_vecs = enc.encode(self._texts)
        return self._passage_vecs @ enc.encode_query(sentence)

    def about_question(self, sentence: str, question: str) -> bool:
        """Whether the sentence shares a content term with the question or its meaning is
        near it: a supported sentence about nothing asked (a planted "reply only with X") is
        no answer. The floor is the gap, on the claim set's dev split, between the supported
        sentences that share no word with their question (lowest 0.02, next 0.22)."""
        # "Yes." / "No, …" reply to the question itself: judge what follows the reply.
        said = self.terms(re.sub(r"^\s*(yes|no)\b[,.!]?", "", sentence, flags=re.I))
        if not question or not said or said & self.terms(question):
            return True  # a bare reply, or no question: nothing to judge
        if self.dense is None:
            return True
        enc = self.dense()
        if question not in self._question_vecs:  # an answer's sentences share one question
            self._question_vecs[question] = enc.encode_query(question)
        return float(self._question_vecs[question] @ enc.encode_query(sentence)) >= ABOUT_QUESTION

    def check(self, sentence: str, cited: list[int], question: str = "") -> Verdict:
        """Support of one answer sentence by each passage, and by the passages it cites taken
        together (a sentence may join facts from two). Words the sentence only echoes from
        the question prove nothing, so support is measured on the rest: the claim."""
        shown = sentence
        sentence = contract_acronyms(sentence, self._acronyms, self._lower_all)
        asked = self.terms(question) if question else set()
        words = self.terms(re.sub(r"^\s*yes\b[,.!]?", "", sentence, flags=re.I))
        claim = words - asked
        keys = (
            key_terms(sentence) - {k for k in key_terms(question)}
            if question
            else key_terms(sentence)
        )
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
        v = Verdict(shown, cited, support)
        # What the sentence asserts, for the alignment checks: a bare "Yes." asserts the
        # question.
        asserted = re.sub(r"^\s*yes\b[,.!]?\s*", "", sentence, flags=re.I)
        if not re.search(r"\w", asserted):
            asserted = question
        contradicted: dict[tuple[int, ...], str] = {}

        def agrees(idx: list[int]) -> bool:
            reason = conflict(asserted, [self.hits[i] for i in idx], keys, question)
            if reason:
                contradicted[tuple(idx)] = reason
            return not reason

        valid = sorted({c for c in cited if 1 <= c <= n})
        if (
            valid
            and self._support(claim, words, keys, sentence, [c - 1 for c in valid])
            >= self.min_overlap
        ):
            # Keep the cited passages that contribute to the claim.
            kept = [c for c in valid if claim & self.words[c - 1] or len(valid) == 1] or valid
            if agrees([c - 1 for c in kept]):
                v.kept, v.reason = kept, "supported"
                return v
        ok = [
            i + 1
            for i, sc in enumerate(support)
            if sc >= self.min_overlap and (i,) not in contradicted and agrees([i])
        ]
        if ok:
            v.kept, v.reason = (
                [max(ok, key=lambda c: support[c - 1])],
                "moved" if cited else "added",
            )
        elif contradicted:
            v.reason = "contradicted: " + next(iter(contradicted.values()))
        else:
            v.reason = "unsupported"
        return v

    def _support(
        self, claim: set, sentence_words: set, keys: set[str], sentence: str, idx: list[int]
    ) -> float:
        if not claim:
            return 0.0
        whole = " ".join(self.lower[i] for i in idx)
        if not all(_mentions(whole, k) for k in self._subject):
            return 0.0
        if len(idx) == 1:
            # The best window of the passage.
            return max(
                self._score(claim, sentence_words, keys, sentence, idx[0], w, low)
                for w, low in self.windows[idx[0]]
            )
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
        if (
            overlap < self.min_overlap
            and i is not None
            and self.dense is not None
            and topical >= 0.4
        ):
            # Paraphrase: close in meaning to the passage although worded differently.
            sim = float(self._similarities(sentence)[i])
            if sim >= self.min_similarity:
                return max(overlap, sim)
        return overlap


def _mentions(lower_text: str, key: str) -> bool:
    if not key.isalnum():
        # A path, option or dotted name (code_terms), written as it is, not as part of a
        # longer name ("/etc/hosts" is not in "/etc/hostname" nor in "/etc/hosts.allow"); a
        # file in its directory ("sysctl.conf" in "/etc/sysctl.conf") and a directory in a
        # path below it are mentioned.
        # A setting may be spaced or quoted in the passage ('LANG = "C"').
        name, eq, value = key.partition("=")
        written = re.escape(name) + (r"\s*=\s*[\"']?" + re.escape(value) if eq else "")
        pattern = r"(?<![\w.$-])" + written + r"(?![\w$-]|\.\w)"
        return re.search(pattern, lower_text) is not None
    # Whole words only, and not inside code: a number in "max_tokens=100" is not a stated fact.
    # A name is the same name in the plural or possessive ("GAN", "GANs", "GAN's").
    forms = {key}
    if key.isalpha() and len(key) > 2:
        forms |= {key + "s", key + "es", key + "'s"}
        if key.endswith("s"):
            forms.add(key[:-1])
    pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.search(r"(?<![a-z0-9_=])(?:" + pattern + r")(?![a-z0-9_=])", lower_text) is not None
