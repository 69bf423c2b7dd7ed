"""Per-question metrics and their summary. Relevance is decided by evidence snippets, not
chunk ids, so re-chunking never breaks the labels."""

from __future__ import annotations

import math
import statistics

from rag.eval.gold import GoldQuestion, answer_correct, holds_evidence


def retrieval_metrics(q: GoldQuestion, passages: list[dict], k: int = 5) -> dict:
    rel = [holds_evidence(p["text"], q.evidence) for p in passages]
    first = next((i + 1 for i, r in enumerate(rel) if r), None)
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(rel[:k]) if r)
    ideal_n = max(1, min(k, sum(rel)))
    idcg = sum(1 / math.log2(i + 2) for i in range(ideal_n))
    return {
        "hit@1": float(bool(rel[:1] and rel[0])),
        "hit@5": float(any(rel[:5])),
        "mrr": 1 / first if first else 0.0,
        "ndcg@5": dcg / idcg,
        "first_relevant_rank": first,
    }


def answer_metrics(q: GoldQuestion, result: dict) -> dict:
    abstained = bool(result.get("abstained"))
    m: dict = {"abstained": abstained}
    if not q.answerable:
        m["refused_correctly"] = float(abstained)
        if result.get("citations"):
            # The documents hold no answer, so no citation of one can hold its evidence.
            m["citation_precision"] = 0.0
        return m
    m["correct"] = float(not abstained and answer_correct(result.get("answer", ""), q.answer_any))
    m["false_refusal"] = float(abstained)
    citations = result.get("citations", [])
    if citations:
        # A citation is precise only when its passage holds a gold evidence snippet: the
        # checker's own verdict ("supported") is what is being measured, so it never counts.
        good = [c for c in citations if holds_evidence(c["text"], q.evidence)]
        m["citation_precision"] = len(good) / len(citations)
        m["citation_recall"] = float(bool(good))
    elif not abstained:
        m["citation_recall"] = 0.0
    return m


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between the nearest ranks, the
    definition every figure of the eval and the benches uses; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * p / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 4) if values else None


def summarise(rows: list[dict]) -> dict:
    """rows: one per question, each with "answerable" and "metrics"."""
    answerable = [r["metrics"] for r in rows if r["answerable"]]
    unanswerable = [r["metrics"] for r in rows if not r["answerable"]]
    s: dict = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    for key in ("hit@1", "hit@5", "mrr", "ndcg@5"):
        s[key] = _mean(m.get(key) for m in answerable)
    if any("correct" in m for m in answerable):
        s["correctness"] = _mean(m.get("correct") for m in answerable)
        # Over every question that cited anything: an answer to an unanswerable question
        # brings its citations into the count.
        s["citation_precision"] = _mean(
            m.get("citation_precision") for m in answerable + unanswerable
        )
        s["citation_recall"] = _mean(
            m.get("citation_recall") for m in answerable if not m.get("abstained")
        )
        s["false_refusal_rate"] = _mean(m.get("false_refusal") for m in answerable)
    if any("refused_correctly" in m for m in unanswerable):
        s["refusal_rate"] = _mean(m.get("refused_correctly") for m in unanswerable)
    for stage in ("expand", "retrieve", "first_token", "total"):
        values = [
            r["timings_ms"][stage] for r in rows if r.get("timings_ms", {}).get(stage) is not None
        ]
        if values:
            s[f"{stage}_ms_p50"] = round(percentile(values, 50))
            s[f"{stage}_ms_p95"] = round(percentile(values, 95))
    return s
