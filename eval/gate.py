"""The regression gate: compare a summary with eval/thresholds.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from rag.errors import BadInput

DEFAULT_THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"


def load_thresholds(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"cannot read thresholds from {path}: {exc}", "fix the TOML file") from None


def failures(summary: dict, thresholds: dict, retrieval_only: bool) -> list[str]:
    """One line per metric below its floor (or above its ceiling)."""
    out = []
    sections = ["retrieval"] + ([] if retrieval_only else ["answer"])
    for section in sections:
        table = thresholds.get(section, {})
        for metric, floor in table.items():
            if isinstance(floor, dict):
                continue
            value = summary.get(metric)
            if value is None:
                out.append(f"{metric}: not measured (floor {floor})")
            elif value < floor:
                out.append(f"{metric}: {value:.3f} is below its floor {floor}")
        for metric, ceiling in table.get("max", {}).items():
            value = summary.get(metric)
            if value is None:
                out.append(f"{metric}: not measured (ceiling {ceiling})")
            elif value > ceiling:
                out.append(f"{metric}: {value:.3f} is above its ceiling {ceiling}")
    return out
