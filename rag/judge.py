"""The local model as a judge: does the cited passage state the sentence?

`EntailmentJudge` asks the model, with worked examples, whether a passage states a claim; its
verdict is P("yes") against "no" from the next-token scores, one forward pass, and a
threshold (chosen on the claim set's dev split) makes it a decision. Opt-in
(`RAG_JUDGE_CITATIONS=1`), after the lexical check of rag/verify.py.
"""

from __future__ import annotations

import math

JUDGE_SYSTEM = (
    "You are a careful fact checker. Answer yes only when the passage states the claim; "
    "answer no when the passage contradicts it or does not say it.\n\n"
    "Example 1:\nPassage: Swifts fly at up to 110 km/h, faster than Arctic terns.\n"
    "Claim: Arctic terns fly faster than swifts.\nAnswer: no\n\n"
    "Example 2:\nPassage: The tern migrates about 70,000 km a year.\n"
    "Claim: Each year the tern travels roughly seventy thousand kilometres.\nAnswer: yes\n\n"
    "Example 3:\nPassage: Swifts can sleep while flying.\n"
    "Claim: Swifts cannot sleep in flight.\nAnswer: no\n\n"
)


def judge_messages(passage: str, sentence: str) -> list[dict]:
    # The passage comes before the claim, so the claims of one answer that rest on one passage
    # share their prompt up to the claim, and llama.cpp reads the passage once.
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Passage: {passage}\nClaim: {sentence}\nAnswer:"},
    ]


class EntailmentJudge:
    """P(supported) for one claim and one passage, read from the next-token scores of "yes"
    against "no". Run on a llama.cpp context of its own (`RagApp.judge_llm`), so its fixed
    instructions stay cached and the answer's context is never disturbed: the answer stream
    simply waits while a sentence is judged. Asked as a separate question, not as a follow-up
    to the model's own answer: on the claim set's dev split the follow-up form scored AUC 0.61
    (the model agrees with itself), this form 0.89 (eval/README.md)."""

    def __init__(self, llm, threshold: float = 0.5):
        self.llm = llm
        self.threshold = threshold
        self._yes = self._first_tokens(["yes", "Yes", " yes", " Yes"])
        self._no = self._first_tokens(["no", "No", " no", " No"])

    def _first_tokens(self, words: list[str]) -> list[int]:
        return sorted({ids[0] for ids in (self.llm.token_ids(w) for w in words) if ids})

    def probability(self, passage: str, sentence: str) -> float:
        scores = self.llm.next_token_scores(
            self.llm.format_prompt(judge_messages(passage, sentence))
        )
        yes = _logsumexp([float(scores[i]) for i in self._yes])
        no = _logsumexp([float(scores[i]) for i in self._no])
        return 1.0 / (1.0 + math.exp(no - yes))


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
