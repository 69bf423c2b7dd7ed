"""The citation checker measured on its own: a labelled claim set of (question, passage,
sentence, supported) items, written from the text alone by someone who never saw the checker
(eval/claims.md says how). `rag eval --claims` prints, per split:

- false-accept rate: the share of unsupported sentences the checker keeps (the failure that
  puts a false "verified" on the page), and
- false-reject rate: the share of supported sentences it drops (a correct answer refused).

Tune a checker on the dev split; report the test split.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BadInput

DEFAULT_CLAIMS = Path(__file__).resolve().parent / "claims.jsonl"


@dataclass
class Claim:
    id: str
    corpus: str
    question: str
    passage: str
    sentence: str
    supported: bool
    category: str
    split: str


def load_claims(path: Path) -> list[Claim]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInput(
            f"cannot read the claim set {path}: {exc.strerror or exc}", "check the path"
        ) from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out.append(
                Claim(
                    str(r["id"]),
                    str(r.get("corpus", "")),
                    str(r.get("question", "")),
                    str(r["passage"]),
                    str(r["sentence"]),
                    bool(r["supported"]),
                    str(r.get("category", "")),
                    str(r.get("split", "dev")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path}:{n}: not a claim ({type(exc).__name__}: {exc})",
                "see eval/claims.md for the format",
            ) from None
    if not out:
        raise BadInput(f"the claim set {path} holds no claims")
    return out


def passage_hit(passage: str):
    """The passage as the checker meets it in an answer: a table row arrives with its header
    row as context, prose as it is."""
    from rag.types import Hit

    lines = passage.split("\n")
    context, text = "", passage
    if len(lines) == 2 and "\t" in lines[0] and "\t" in lines[1]:
        # As the chunker stores a row: its header in the context (rag/chunking.py).
        context, text = (
            "Table columns: " + " | ".join(c.strip() for c in lines[0].split("\t")),
            lines[1],
        )
    return Hit(
        id="c",
        rank=1,
        score=1.0,
        text=text,
        context=context,
        source="",
        title="",
        section="",
        kind="table_row" if context else "prose",
        start=0,
        end=len(text),
    )


def lexical_checker(dense=None, sparse=None) -> Callable[[Claim], bool]:
    """The lexical checker as an answer applies it (rag.citations.CitationCheck without the
    judge): kept when rag.verify.Verifier rests the sentence on the passage, finds no
    contradiction in it, and the sentence is about the question."""
    from rag.verify import Verifier

    terms = (lambda text: set(sparse().encode_query(text)[0])) if sparse else None

    def accept(c: Claim) -> bool:
        v = Verifier([passage_hit(c.passage)], dense, terms)
        return bool(v.check(c.sentence, [1], c.question).kept) and v.about_question(
            c.sentence, c.question
        )

    return accept


def judge_probabilities(claims: list[Claim], llm, progress: bool = True) -> list[float]:
    """P(supported) from rag.judge.EntailmentJudge for each claim, with the passage shown as
    the answer path shows it (a table row as its cells under their column names)."""
    from rag.judge import EntailmentJudge
    from rag.prompt import readable

    judge = EntailmentJudge(llm)
    out = []
    for i, c in enumerate(claims, 1):
        hit = passage_hit(c.passage)
        out.append(judge.probability(readable(hit), c.sentence))
        if progress and i % 50 == 0:
            import sys

            sys.stderr.write(f"judge: {i}/{len(claims)} claims\n")
    return out


def choose_threshold(
    claims: list[Claim], probs: list[float], max_false_accept: float | None = None
) -> float:
    """A threshold chosen on the dev split alone, never the test split. By default the one
    with the fewest errors of both kinds (false-accept rate + false-reject rate); with
    `max_false_accept`, the lowest threshold that keeps false accepts within it."""
    dev = [(c, p) for c, p in zip(claims, probs) if c.split == "dev"]
    unsupported = [p for c, p in dev if not c.supported] or [0.0]
    supported = [p for c, p in dev if c.supported] or [1.0]
    best = (float("inf"), 1.0)
    for t in sorted({round(p, 3) for _, p in dev} | {0.5}):
        fa = sum(p >= t for p in unsupported) / len(unsupported)
        fr = sum(p < t for p in supported) / len(supported)
        if max_false_accept is not None:
            if fa <= max_false_accept:
                return t
        elif fa + fr < best[0]:
            best = (fa + fr, t)
    return best[1] if max_false_accept is None else 1.0


def score(claims: list[Claim], accept: Callable[[Claim], bool]) -> dict:
    """Rates per split and per category. `accepted` is the checker's verdict; the label is
    `supported`."""
    per_split: dict[str, Counter] = defaultdict(Counter)
    per_cat: dict[str, Counter] = defaultdict(Counter)
    for c in claims:
        ok = accept(c)
        for key in (c.split, "all"):
            t = per_split[key]
            t["supported" if c.supported else "unsupported"] += 1
            if c.supported and not ok:
                t["false_reject"] += 1
            if not c.supported and ok:
                t["false_accept"] += 1
        per_cat[c.category]["n"] += 1
        per_cat[c.category]["wrong"] += int(ok != c.supported)
    out: dict = {"splits": {}, "categories": {}}
    for key, t in per_split.items():
        out["splits"][key] = {
            "claims": t["supported"] + t["unsupported"],
            "false_accept_rate": round(t["false_accept"] / t["unsupported"], 4)
            if t["unsupported"]
            else None,
            "false_reject_rate": round(t["false_reject"] / t["supported"], 4)
            if t["supported"]
            else None,
        }
    for cat, t in sorted(per_cat.items()):
        out["categories"][cat] = {"claims": t["n"], "error_rate": round(t["wrong"] / t["n"], 4)}
    return out


def format_scores(label: str, result: dict) -> str:
    lines = [
        f"checker: {label}",
        "| split | claims | false accepts | false rejects |",
        "|---|---|---|---|",
    ]
    for key in ("dev", "test", "all"):
        r = result["splits"].get(key)
        if r:
            lines.append(
                f"| {key} | {r['claims']} | {_pct(r['false_accept_rate'])} | "
                f"{_pct(r['false_reject_rate'])} |"
            )
    lines += ["", "| category | claims | wrong |", "|---|---|---|"]
    for cat, r in result["categories"].items():
        lines.append(f"| {cat} | {r['claims']} | {_pct(r['error_rate'])} |")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def measure_candidates(app, path: Path, lexical_only: bool = False) -> tuple[str, dict]:
    """Every candidate checker on the claim set: the lexical check, the LLM judge (threshold
    chosen on dev) and both together (a sentence must pass each)."""
    claims = load_claims(path)
    lexical = lexical_checker(app.dense, app.sparse)
    lex = {c.id: lexical(c) for c in claims}
    results = {"lexical": score(claims, lambda c: lex[c.id]), "lexical_verdicts": lex}
    texts = [
        format_scores(
            "lexical (rag.verify.Verifier: words, names, numbers, MiniLM)", results["lexical"]
        )
    ]
    if not lexical_only:
        llm = app.judge_llm()
        probs = dict(zip((c.id for c in claims), judge_probabilities(claims, llm)))
        ranked = [probs[c.id] for c in claims]
        shipped = app.settings.judge_threshold
        chosen = choose_threshold(claims, ranked)
        strict = choose_threshold(claims, ranked, max_false_accept=0.03)
        results["judge"] = score(claims, lambda c: probs[c.id] >= shipped)
        results["judge"].update(threshold=shipped, chosen_on_dev=chosen, strict_on_dev=strict)
        results["judge, false accepts <= 3 % on dev"] = score(
            claims, lambda c: probs[c.id] >= strict
        )
        results["lexical+judge"] = score(claims, lambda c: lex[c.id] and probs[c.id] >= shipped)
        results["probabilities"] = probs
        texts.append(
            format_scores(
                (
                    f"LLM judge ({llm.name}, P(yes) >= {shipped:.3f}, RAG_JUDGE_THRESHOLD; "
                    f"fewest errors on dev: {chosen:.3f})"
                ),
                results["judge"],
            )
        )
        texts.append(
            format_scores(
                f"LLM judge at P(yes) >= {strict:.3f} (false accepts <= 3 % on dev)",
                results["judge, false accepts <= 3 % on dev"],
            )
        )
        texts.append(
            format_scores("lexical and LLM judge (both must accept)", results["lexical+judge"])
        )
    return "\n\n".join(texts), results
