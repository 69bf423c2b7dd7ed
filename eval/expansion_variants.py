"""How a query expansion should join the search: every weighting of the guess in the dense
vector and in the BM25 query, scored on the gold set's answerable questions in hybrid mode.

    python -m rag.eval.expansion_variants [--gold eval/gold.jsonl]

Uses the index and the expansion cache in RAG_DATA_DIR (the first run has the model write the
guesses, about a minute). What ships is rag.retrieve: dense weight 1, extra words
EXPANSION_TERM_WEIGHT. Chosen on the gold set, so its figure flatters it a little.
"""

from __future__ import annotations

import argparse

import numpy as np

from rag.eval.gold import DEFAULT_GOLD, holds_evidence, load_gold
from rag.eval.runner import RETRIEVAL_DEPTH
from rag.retrieve import dense_query, keyword_query

DENSE_WEIGHTS = (0.0, 0.5, 1.0)
TERM_WEIGHTS = (0.0, 0.3, 0.5, 1.0)


def main(argv: list[str] | None = None) -> None:
    from rag.app import RagApp
    from rag.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", default=DEFAULT_GOLD)
    args = parser.parse_args(argv)
    # Every question gets a guess here (expand_below=1), to see the weighting on all of them.
    app = RagApp(load_settings(expand_below=1.0))
    app.ensure_index()
    gold = [q for q in load_gold(args.gold) if q.answerable]
    dense, sparse = app.dense(), app.sparse()
    ranks: dict[tuple[float, float], list[int | None]] = {}
    for q in gold:
        guess = app.expand(q.question)
        question_vec, guess_vec = dense.encode([q.question, guess or q.question])
        for wd in DENSE_WEIGHTS:
            vec = dense_query(question_vec, guess_vec if guess else None, wd)
            for wt in TERM_WEIGHTS:
                points = app.store.query(
                    "hybrid",
                    vec.tolist(),
                    keyword_query(sparse, q.question, guess, wt),
                    RETRIEVAL_DEPTH,
                    {},
                )
                rank = next(
                    (
                        i
                        for i, p in enumerate(points, 1)
                        if holds_evidence(p.payload["text"], q.evidence)
                    ),
                    None,
                )
                ranks.setdefault((wd, wt), []).append(rank)
    app.close()
    print(f"{len(gold)} answerable questions, hybrid, top {RETRIEVAL_DEPTH}")
    print("dense weight | word weight | hit@1 | hit@5 | MRR   | missed in the top 5")
    for (wd, wt), rs in ranks.items():
        hit1 = np.mean([r == 1 for r in rs])
        hit5 = np.mean([r is not None and r <= 5 for r in rs])
        mrr = np.mean([1 / r if r else 0.0 for r in rs])
        missed = [q.id for q, r in zip(gold, rs) if not r or r > 5]
        print(f"{wd:12.1f} | {wt:11.1f} | {hit1:.3f} | {hit5:.3f} | {mrr:.3f} | {' '.join(missed)}")


if __name__ == "__main__":
    main()
