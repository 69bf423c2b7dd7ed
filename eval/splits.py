"""Every corpus's dev and test split through `rag eval --gold FILE --corpus DIR`, one table.

    python -m rag.eval.splits [--retrieval-only] [--corpus NAME] [--split dev|test] [--out DIR]

Each set runs in its own `rag eval` process over a freshly built index of its corpus, so the
figures come from exactly the command a user runs. The sets are listed in
eval/sets/splits.toml. Read the dev rows' misses to tune; report the test rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ROOT / "eval" / "sets" / "splits.toml"
ANSWER_KEYS = [
    ("correctness", "correct"),
    ("citation_precision", "citations hold evidence"),
    ("citation_recall", "citation recall"),
    ("false_refusal_rate", "false refusals"),
    ("refusal_rate", "unanswerable refused"),
]
RETRIEVAL_KEYS = [("hit@1", "hit@1"), ("hit@5", "hit@5"), ("mrr", "MRR")]
TIME_KEYS = [("first_token_ms_p50", "first token p50 (ms)"), ("total_ms_p50", "total p50 (ms)")]


def load_sets(path: Path = SPLITS) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["set"]


def run_set(s: dict, out: Path, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "rag.cli",
        "eval",
        "--gold",
        str(ROOT / s["gold"]),
        "--corpus",
        str(ROOT / s["docs"]),
        "--out",
        str(out),
        *extra,
    ]
    sys.stderr.write("$ " + " ".join(["rag", *cmd[3:]]) + "\n")
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report.get("configs") or [report["summary"]]


def table(rows: list[tuple[dict, list[dict]]], retrieval_only: bool) -> str:
    keys = RETRIEVAL_KEYS + ([] if retrieval_only else ANSWER_KEYS + TIME_KEYS)
    head = (
        "| corpus | split | configuration | questions (answerable) | "
        + " | ".join(name for _, name in keys)
        + " |"
    )
    lines = [head, "|" + "---|" * (4 + len(keys))]
    for s, summaries in rows:
        for summary in summaries:
            cells = []
            for key, _ in keys:
                v = summary.get(key)
                cells.append(
                    "–"
                    if v is None
                    else f"{v:.3f}"
                    if isinstance(v, float) and v <= 1
                    else f"{v:.0f}"
                )
            lines.append(
                f"| {s['corpus']} | {s['split']} | {summary.get('config', '')} | "
                f"{summary['questions']} ({summary['answerable']}) | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rag.eval.splits", description=__doc__.splitlines()[0]
    )
    p.add_argument("--retrieval-only", action="store_true")
    p.add_argument("--no-expand", action="store_true")
    p.add_argument("--corpus", action="append", help="only this corpus (repeatable)")
    p.add_argument("--split", choices=["dev", "test"], help="only this split")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "splits")
    args = p.parse_args(argv)
    extra = (["--retrieval-only"] if args.retrieval_only else []) + (
        ["--no-expand"] if args.no_expand else []
    )
    rows = []
    for s in load_sets():
        if (args.corpus and s["corpus"] not in args.corpus) or (
            args.split and s["split"] != args.split
        ):
            continue
        rows.append((s, run_set(s, args.out / f"{s['corpus']}-{s['split']}", extra)))
    text = table(rows, args.retrieval_only)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ("retrieval.md" if args.retrieval_only else "answers.md")).write_text(
        text + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
