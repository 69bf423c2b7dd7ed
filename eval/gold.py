"""Gold question files (see shared CONTRACTS.md §2): one JSON object per line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import BadInput

DEFAULT_GOLD = Path(__file__).resolve().parent / "gold.jsonl"


@dataclass
class GoldQuestion:
    id: str
    question: str
    answerable: bool
    evidence: list[str] = field(default_factory=list)
    answer_any: list[list[str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    kind: str = ""


def load_gold(path: Path) -> list[GoldQuestion]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInput(
            f"cannot read the gold file {path}: {exc.strerror or exc}", "check the path"
        ) from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append(
                GoldQuestion(
                    id=str(rec["id"]),
                    question=str(rec["question"]),
                    answerable=bool(rec["answerable"]),
                    evidence=list(rec.get("evidence", [])),
                    answer_any=[list(g) for g in rec.get("answer_any", [])],
                    sources=list(rec.get("sources", [])),
                    kind=str(rec.get("kind", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path}:{n}: not a gold question ({type(exc).__name__}: {exc})",
                "see CONTRACTS.md §2 for the format",
            ) from None
    if not out:
        raise BadInput(f"the gold file {path} holds no questions")
    return out


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def holds_evidence(text: str, evidence: list[str]) -> bool:
    folded = fold(text)
    return any(fold(e) in folded for e in evidence if e.strip())


def answer_correct(answer: str, groups: list[list[str]]) -> bool:
    folded = answer.lower()
    return all(any(s.lower() in folded for s in group) for group in groups)
