"""Check the raw answers of an earlier `rag eval` run again, with the checker as it is now.

    python -m rag.eval.recheck RUN_DIR [--gold FILE] [--out DIR]

A change to the citation check is measured on exactly the answers the model wrote before:
each question's recorded passages and raw answer go through the answer path again
(rag.answer.Answerer, with a model that replays the raw answer instead of generating), then
are scored as `rag eval` scores them. Generation is the noisy part of an end-to-end run (two
runs of one split differ by a question or two); a recheck holds it still, so every answer
that moves is the checker's doing, and it takes seconds instead of the model's minutes. The
prompt is rebuilt with the real model's tokenizer, so the passages given to the check are
those the model was given. Rows refused before any answer was written (nothing relevant was
retrieved) stay as they were.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from rag.eval.gold import load_gold
from rag.eval.metrics import summarise
from rag.eval.runner import scored_row
from rag.types import Hit


def hit_from_json(d: dict) -> Hit:
    # Runs recorded before passages carried their kind: a row is known by its header.
    kind = d.get("kind") or ("table_row" if "Table columns:" in d.get("context", "") else "prose")
    start, end = d.get("span", [0, 0])
    return Hit(
        id=f"{d['source']}:{start}",
        rank=d["rank"],
        score=d["score"],
        text=d["text"],
        context=d.get("context", ""),
        source=d["source"],
        title=d.get("title", ""),
        section=d.get("section", ""),
        kind=kind,
        start=start,
        end=end,
        sources=d.get("sources", []),
        relevance=d.get("relevance", 0.0),
    )


class ReplayLLM:
    """The model as the answer path sees it, except that `chat` streams a recorded answer."""

    def __init__(self, llm):
        self.llm = llm
        self.name = llm.name
        self.n_ctx = llm.n_ctx
        self.raw = ""

    def count_chat_tokens(self, messages: list[dict]) -> int:
        return self.llm.count_chat_tokens(messages)

    def chat(self, messages, max_tokens=None, temperature=None) -> Iterator[str]:
        # A few characters at a time, as tokens arrive: sentences settle mid-stream as they do
        # in a real answer.
        for i in range(0, len(self.raw), 4):
            yield self.raw[i : i + 4]


def recheck(app, run_rows: list[dict], gold_path: Path) -> list[dict]:
    from rag.answer import Answerer

    gold = {q.id: q for q in load_gold(gold_path)}
    replay = ReplayLLM(app.llm())
    answerer = Answerer(replay, app.settings, app.dense, app.sparse)
    rows = []
    for old in run_rows:
        q = gold[old["id"]]
        hits = [hit_from_json(p) for p in old["passages"]]
        if "raw_answer" in old:
            replay.raw = old["raw_answer"]
            result = None
            for event in answerer.stream(
                old["question"], hits, 0, old.get("mode", "hybrid"),
                standalone=old.get("standalone_question", ""),
            ):  # fmt: skip
                if event.kind == "done":
                    result = event.answer.to_json()
        else:
            result = {k: v for k, v in old.items() if k not in ("metrics",)}
        rows.append(scored_row(q, result))
    return rows


def read_rows(run_dir: Path) -> list[dict]:
    report = run_dir / "report.json"
    if report.exists():
        return json.loads(report.read_text(encoding="utf-8"))["questions"]
    lines = (run_dir / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> int:
    from rag.app import RagApp
    from rag.errors import RagError
    from rag.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m rag.eval.recheck", description=__doc__)
    parser.add_argument("run", type=Path, help="the --out folder of an earlier rag eval")
    parser.add_argument("--gold", type=Path, help="its gold file (default: the run's own)")
    parser.add_argument("--out", type=Path, help="write report.json here as well")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.run)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"recheck: cannot read the run in {args.run} ({exc}); pass the --out "
                         "folder of a finished or interrupted rag eval\n")  # fmt: skip
        return 2
    gold = args.gold
    try:
        if gold is None:
            report = args.run / "report.json"
            gold = Path(json.loads(report.read_text(encoding="utf-8"))["summary"]["gold"])
        known = {q.id for q in load_gold(gold)}
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"recheck: cannot read the run's gold file ({exc}); pass it with "
                         "--gold FILE\n")  # fmt: skip
        return 2
    missing = sorted({r.get("id", "?") for r in rows} - known)
    if missing:
        sys.stderr.write(
            f"recheck: {len(missing)} question(s) of the run are not in {gold} "
            f"(first: {missing[0]}); pass the run's own file with --gold\n"
        )
        return 2
    try:
        app = RagApp(load_settings())
        rechecked = recheck(app, rows, gold)
    except RagError as exc:
        sys.stderr.write(f"recheck: {exc.one_line()}\n")
        return exc.exit_code
    before, after = summarise(rows), summarise(rechecked)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"summary": dict(after, gold=str(gold)), "questions": rechecked}
        (args.out / "report.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    keys = [
        ("correctness", "correct"),
        ("citation_precision", "citations hold evidence"),
        ("citation_recall", "citation recall"),
        ("false_refusal_rate", "false refusals"),
        ("refusal_rate", "unanswerable refused"),
    ]
    print("| checker | " + " | ".join(name for _, name in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for label, s in (("as recorded", before), ("rechecked now", after)):
        cells = " | ".join(_fmt(s.get(k)) for k, _ in keys)
        print(f"| {label} | {cells} |")
    # Each answer the recheck moved, so a change is read question by question.
    for was, now in zip(rows, rechecked):
        if _verdict(was) != _verdict(now):
            print(f"{now['id']}: {_verdict(was)} -> {_verdict(now)}: {now['question']}")
    return 0


def _verdict(row: dict) -> str:
    m = row.get("metrics", {})
    if not row.get("answerable", True):
        return "refused" if m.get("abstained") else "answered"
    if m.get("abstained"):
        return "refused"
    cited = f", citations {m['citation_precision']:.2f}" if "citation_precision" in m else ""
    return ("correct" if m.get("correct") else "wrong") + cited


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
