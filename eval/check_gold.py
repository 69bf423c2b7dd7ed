"""Check a gold question set against its corpus.

Usage: python -m rag.eval.check_gold GOLD.jsonl CORPUS_DIR

Checks every line parses as JSON with the required fields, ids are unique,
unanswerable/injection items carry no evidence, no `answer_any` string already occurs in its
question (an answer that echoes the question must not count as correct), and every evidence
snippet
  - avoids the characters the loader repairs or splits on (β, Β, ·, quotes, tabs, < >),
  - occurs (case-insensitive, whitespace runs collapsed) in the text the project's own loader
    reads from a corpus file (so HTML and PDF are checked as rag sees them), inside a single
    line and a single tab-separated cell (a PDF: inside one paragraph, since its lines are the
    page's layout, not the text's),
  - is found in a listed source, and every file holding it is listed in `sources`.
Prints counts per kind. Exits 1 on any problem.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

REQUIRED = {
    "id": str,
    "question": str,
    "answerable": bool,
    "evidence": list,
    "answer_any": list,
    "sources": list,
}
KINDS = {
    "fact",
    "table",
    "comparison",
    "multi_guide",
    "paraphrase",
    "exact_term",
    "unanswerable",
    "injection",
}
BAD_CHARS = set("βΒ·\t\"'`‘’“”<>")


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def load_cells(corpus: Path) -> dict[str, list[str]]:
    """File name -> normalised table cells / line fragments (a snippet may not span them),
    read through the project's loader."""
    from rag.loaders import SkipFile, find_files, load

    cells = {}
    files, _ = find_files([corpus])
    for found in files:
        try:
            doc = load(found)
        except SkipFile:
            continue
        units = doc.text.split("\n\n") if doc.kind == "pdf" else doc.text.splitlines()
        cells[found.path.name] = [norm(c) for unit in units for c in unit.split("\t")]
    return cells


def check(gold: Path, corpus: Path) -> int:
    cells = load_cells(corpus)
    problems: list[str] = []
    kinds: Counter = Counter()
    answerable = Counter()
    lines = gold.read_text(encoding="utf-8").splitlines()
    seen_ids: set[str] = set()
    for n, line in enumerate(lines, 1):
        where = f"line {n}"
        if not line.strip():
            problems.append(f"{where}: blank line")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: invalid JSON ({e})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        for key, typ in REQUIRED.items():
            if not isinstance(rec.get(key), typ):
                problems.append(f"{where}: field {key!r} missing or not {typ.__name__}")
        if any(p.startswith(f"{where}: field") for p in problems):
            continue
        where = f"line {n} ({rec['id']})"
        if rec["id"] in seen_ids:
            problems.append(f"{where}: id used twice")
        seen_ids.add(rec["id"])
        if not rec["question"].strip():
            problems.append(f"{where}: empty question")
        kind = rec.get("kind")
        if kind is not None and kind not in KINDS:
            problems.append(f"{where}: unknown kind {kind!r}")
        kinds[kind] += 1
        answerable[rec["answerable"]] += 1

        if not rec["answerable"]:
            for key in ("evidence", "answer_any", "sources"):
                if rec[key]:
                    problems.append(f"{where}: unanswerable but {key} is not empty")
            if kind not in (None, "unanswerable", "injection"):
                problems.append(f"{where}: unanswerable with kind {kind!r}")
            continue
        if kind in ("unanswerable", "injection"):
            problems.append(f"{where}: kind {kind!r} but answerable is true")
        for key in ("evidence", "answer_any", "sources"):
            if not rec[key]:
                problems.append(f"{where}: answerable but {key} is empty")
        question = rec["question"].lower()
        for group in rec["answer_any"]:
            if not (
                isinstance(group, list)
                and group
                and all(isinstance(s, str) and s.strip() for s in group)
            ):
                problems.append(f"{where}: answer_any group {group!r} is not a list of strings")
                continue
            echoed = [s for s in group if s.lower() in question]
            if echoed:
                problems.append(f"{where}: answer_any {echoed!r} already occurs in the question")
        sources = rec["sources"]
        for s in sources:
            if not isinstance(s, str) or s not in cells:
                problems.append(f"{where}: source {s!r} is not a corpus file name")
        holding: set[str] = set()
        for snip in rec["evidence"]:
            if not isinstance(snip, str) or not snip.strip():
                problems.append(f"{where}: empty or non-string evidence {snip!r}")
                continue
            bad = sorted(set(snip) & BAD_CHARS)
            if bad:
                problems.append(f"{where}: evidence {snip!r} contains {bad}")
            if "\n" in snip:
                problems.append(f"{where}: evidence {snip!r} spans lines")
            ns = norm(snip)
            found = {name for name, cs in cells.items() if any(ns in c for c in cs)}
            if not found:
                problems.append(f"{where}: evidence {snip!r} not found within one line/cell")
            elif not found & set(sources):
                problems.append(
                    f"{where}: evidence {snip!r} is in {sorted(found)}, "
                    f"none of which is listed in sources"
                )
            holding |= found
        extra = holding - set(sources)
        if extra:
            problems.append(f"{where}: evidence also occurs in unlisted sources {sorted(extra)}")
        unused = set(sources) - holding
        if unused:
            problems.append(f"{where}: sources {sorted(unused)} hold none of the evidence")

    print(f"{len(lines)} questions: {answerable[True]} answerable, {answerable[False]} not")
    for kind, count in sorted(kinds.items(), key=lambda kv: str(kv[0])):
        print(f"  {kind}: {count}")
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(check(Path(sys.argv[1]), Path(sys.argv[2])))
