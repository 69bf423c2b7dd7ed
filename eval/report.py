"""report.md: a summary table (one column per configuration), a chart, and every miss."""

from __future__ import annotations

from pathlib import Path

METRICS = [
    ("hit@1", "Retrieval hit@1"),
    ("hit@5", "Retrieval hit@5"),
    ("mrr", "Retrieval MRR"),
    ("ndcg@5", "Retrieval nDCG@5"),
    ("correctness", "Answer correctness"),
    ("citation_precision", "Citation precision"),
    ("citation_recall", "Citation recall"),
    ("refusal_rate", "Refusal rate (unanswerable)"),
    ("false_refusal_rate", "False refusals (answerable)"),
    ("expand_ms_p50", "Query expansion ms p50"),
    ("expand_ms_p95", "Query expansion ms p95"),
    ("retrieve_ms_p50", "Retrieval ms p50"),
    ("retrieve_ms_p95", "Retrieval ms p95"),
    ("first_token_ms_p50", "First token ms p50"),
    ("first_token_ms_p95", "First token ms p95"),
    ("total_ms_p50", "Total ms p50"),
    ("total_ms_p95", "Total ms p95"),
]


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value <= 1.0:
        return f"{value:.3f}"
    return f"{value:.0f}" if isinstance(value, (int, float)) else str(value)


def summary_table(summaries: list[dict]) -> str:
    head = "| metric | " + " | ".join(s.get("config", "") for s in summaries) + " |"
    rule = "|---|" + "---|" * len(summaries)
    lines = [head, rule]
    for key, name in METRICS:
        if any(s.get(key) is not None for s in summaries):
            lines.append(f"| {name} | " + " | ".join(_fmt(s.get(key)) for s in summaries) + " |")
    lines.append(
        "| questions | " + " | ".join(str(s.get("questions", "")) for s in summaries) + " |"
    )
    return "\n".join(lines)


def chart(path: Path, summaries: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        (k, n)
        for k, n in METRICS
        if not k.endswith(("_p50", "_p95")) and any(s.get(k) is not None for s in summaries)
    ]
    fig, ax = plt.subplots(figsize=(max(6, len(keys) * 1.1), 3.6), dpi=90)
    width = 0.8 / max(1, len(summaries))
    for i, s in enumerate(summaries):
        ax.bar(
            [j + i * width for j in range(len(keys))],
            [s.get(k) or 0 for k, _ in keys],
            width,
            label=s.get("config", ""),
        )
    ax.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels(
        [n.replace(" (", "\n(") for _, n in keys], fontsize=7, rotation=20, ha="right"
    )
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def misses(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        m = r.get("metrics", {})
        missed = []
        if r["answerable"]:
            if m.get("hit@5") == 0.0:
                missed.append("evidence not in the top 5")
            if m.get("correct") == 0.0:
                missed.append("refused" if m.get("abstained") else "answer incorrect")
            if m.get("citation_precision") is not None and m["citation_precision"] < 1:
                missed.append("a citation lacks support")
        elif m.get("refused_correctly") == 0.0:
            missed.append("answered an unanswerable question")
        if not missed:
            continue
        out.append(f"### {r['id']} ({r.get('kind', '')}): {', '.join(missed)}\n")
        out.append(f"**Question:** {r['question']}\n")
        if r.get("expansion"):
            out.append(f"**Searched with the model's guess:** {r['expansion']}\n")
        if "answer" in r:
            out.append(f"**Answer:** {r['answer']}\n")
        for c in r.get("citations", []):
            out.append(f"- [{c['n']}] `{c['source']}`: {' '.join(c['text'].split())[:300]}")
        if r.get("evidence"):
            out.append("\n**Expected evidence:** " + " / ".join(f"“{e}”" for e in r["evidence"]))
        top = r.get("passages", [])[:3]
        if top and m.get("hit@5") == 0.0:
            out.append(
                "\n**Top passages:**\n"
                + "\n".join(
                    f"{p['rank']}. `{p['source']}`: {' '.join(p['text'].split())[:200]}"
                    for p in top
                )
            )
        out.append("")
    return out


def write_markdown(
    path: Path, summaries: list[dict], rows: list[dict], title: str = "Evaluation report"
) -> None:
    chart(path.with_name("metrics.png"), summaries)
    lines = [
        f"# {title}",
        "",
        summary_table(summaries),
        "",
        "![metrics per configuration](metrics.png)",
        "",
    ]
    missed = misses(rows)
    lines += ["## Misses", "", *(missed or ["None."])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
