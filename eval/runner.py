"""`rag eval`: every gold question through the same path as `rag ask`, scored, written to
DIR/report.json and DIR/report.md as it goes (an interrupted run keeps what it did)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rag.eval.gold import GoldQuestion, load_gold
from rag.eval.metrics import answer_metrics, retrieval_metrics, summarise

RETRIEVAL_DEPTH = 10


def run_questions(
    app,
    gold: list[GoldQuestion],
    retrieval_only: bool = False,
    mode: str | None = None,
    on_row: Callable[[dict], None] | None = None,
    progress: bool = True,
    ask: Callable[[str], dict] | None = None,
    desc: str = "eval",
) -> list[dict]:
    """`ask` replaces the app's answer path (the llama-index baseline)."""
    rows = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(gold), unit="q", file=sys.stderr, disable=None, desc=desc)
    for q in gold:
        started = time.perf_counter()
        if retrieval_only:
            expansion = app.expand(q.question)
            expand_ms = int((time.perf_counter() - started) * 1000)
            hits = app.search(q.question, mode=mode, top_k=RETRIEVAL_DEPTH, expansion=expansion)
            ms = int((time.perf_counter() - started) * 1000)
            result = {
                "question": q.question,
                "passages": [h.to_json() for h in hits],
                "mode": mode or app.settings.mode,
                "timings_ms": {"retrieve": ms - expand_ms, "expand": expand_ms, "total": ms},
            }
            if expansion:
                result["expansion"] = expansion
        elif ask is not None:
            result = ask(q.question)
        else:
            result = app.ask(q.question, mode=mode).to_json()
        row = scored_row(q, result, answered=not retrieval_only)
        rows.append(row)
        if on_row:
            on_row(row)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return rows


def scored_row(q: GoldQuestion, result: dict, answered: bool = True) -> dict:
    """One question's result with its gold fields and metrics, as the report holds it."""
    metrics = retrieval_metrics(q, result["passages"]) if q.answerable else {}
    if answered:
        metrics.update(answer_metrics(q, result))
    return dict(
        result,
        id=q.id,
        kind=q.kind,
        answerable=q.answerable,
        evidence=q.evidence,
        answer_any=q.answer_any,
        metrics=metrics,
    )


# The configurations of `rag eval --compare`: (label, settings overrides, retrieval mode).
COMPARE = [
    ("rag hybrid", {}, "hybrid"),
    ("rag dense", {}, "dense"),
    ("rag sparse", {}, "sparse"),
    ("rag, citations unchecked", {"verify_citations": False}, "hybrid"),
    ("rag, qwen2.5-coder-0.5b", {"llm": "qwen2.5-coder-0.5b"}, "hybrid"),
    ("llama-index hybrid, cited", None, None),
]


def run_compare(
    app, gold_path: Path, out_dir: Path, limit: int | None = None, retrieval_only: bool = False
) -> list[dict]:
    """Every configuration on the same gold set, side by side; the first is the reference."""
    gold = load_gold(gold_path)[: limit or None]
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, first_rows = [], None
    for label, overrides, mode in COMPARE:
        if retrieval_only and (overrides or overrides is None):
            continue
        if overrides is None:
            from rag.eval.baseline import LlamaIndexBaseline

            baseline = LlamaIndexBaseline(app)
            rows = run_questions(app, gold, ask=baseline.ask, desc=label)
        else:
            derived = app.derive(**overrides) if overrides else app
            rows = run_questions(derived, gold, retrieval_only, mode, desc=label)
        summary = summarise(rows)
        summary["config"] = label
        summaries.append(summary)
        first_rows = first_rows or rows
        (out_dir / f"{_slug(label)}.json").write_text(
            json.dumps({"summary": summary, "questions": rows}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
    report = {"summary": summaries[0], "questions": first_rows, "configs": summaries}
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    from rag.eval.report import write_markdown

    write_markdown(
        out_dir / "report.md", summaries, first_rows, title="Evaluation: configurations compared"
    )
    return summaries


def _slug(label: str) -> str:
    return "-".join(
        "".join(ch if ch.isalnum() or ch == "." else " " for ch in label.lower()).split()
    )


def naive_rows(app, gold: list[GoldQuestion]) -> list[dict]:
    """The naive baseline (eval/naive.py) over the app's corpus, scored like rag's search."""
    from rag.eval.naive import NaiveRetriever

    naive = NaiveRetriever(app.settings.corpus, app.dense(), app.sparse())
    rows = []
    for q in gold:
        passages = naive.search(q.question, RETRIEVAL_DEPTH)
        rows.append(
            {
                "id": q.id,
                "question": q.question,
                "answerable": q.answerable,
                "passages": passages,
                "metrics": retrieval_metrics(q, passages) if q.answerable else {},
            }
        )
    return rows


def run_retrieval_table(app, gold_path: Path, out_dir: Path, limit: int | None = None) -> dict:
    """`rag eval --retrieval-only`: hybrid (the reference, in report.json), dense, sparse and
    the naive baseline, all in one run over the same index."""
    gold = load_gold(gold_path)[: limit or None]
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, reference = [], None
    for mode in ("hybrid", "dense", "sparse"):
        rows = run_questions(app, gold, True, mode, desc=f"retrieval {mode}")
        summary = summarise(rows)
        summary.update(config=describe(app, mode, True), gold=str(gold_path))
        summaries.append(summary)
        reference = reference or rows
    summary = summarise(naive_rows(app, gold))
    summary.update(
        config="naive baseline (500-char chunks, MiniLM + BM25, RRF)", gold=str(gold_path)
    )
    summaries.append(summary)
    report = {"summary": summaries[0], "questions": reference, "configs": summaries}
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    from rag.eval.report import write_markdown

    write_markdown(
        out_dir / "report.md",
        summaries,
        reference,
        title="Evaluation: retrieval, every mode and the naive baseline",
    )
    return report


def run_eval(
    app,
    gold_path: Path,
    out_dir: Path,
    retrieval_only: bool = False,
    mode: str | None = None,
    limit: int | None = None,
    label: str = "",
) -> dict:
    gold = load_gold(gold_path)[: limit or None]
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "questions.jsonl"
    partial.write_text("")

    def keep(row: dict) -> None:
        with partial.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    rows = run_questions(app, gold, retrieval_only, mode, on_row=keep)
    summary = summarise(rows)
    summary.update(config=label or describe(app, mode, retrieval_only), gold=str(gold_path))
    report = {"summary": summary, "questions": rows}
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    from rag.eval.report import write_markdown

    write_markdown(out_dir / "report.md", [summary], rows)
    return report


def describe(app, mode: str | None, retrieval_only: bool) -> str:
    s = app.settings
    parts = [f"mode={mode or s.mode}", f"expand={'on' if s.expand_query else 'off'}"]
    if not retrieval_only or s.expand_query:  # the model writes the expansions
        parts.append(f"model={s.llm}")
    if not retrieval_only:
        parts.append(f"verify={'on' if s.verify_citations else 'off'}")
    return " ".join(parts)
