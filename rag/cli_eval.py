"""`rag eval`: the gold questions, the claim set and the thresholds gate, run in this process
(never through `rag serve`: the figures must not depend on what a server has loaded). The
eval harness is imported when the command runs, not when `rag` starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.cli_app import app_for


def cmd_eval(args, settings) -> int:
    from rag.eval.gold import DEFAULT_GOLD
    from rag.eval.report import summary_table
    from rag.eval.runner import run_eval

    if args.claims is not None:
        return _eval_claims(args, settings)
    if args.corpus:
        if not args.corpus.is_dir():
            from rag.errors import BadInput

            raise BadInput(
                f"the corpus folder {args.corpus} does not exist",
                "pass the folder the gold file is about",
            )
        # A collection per corpus, rebuilt for the run: the figures never depend on what the
        # default index happens to hold.
        slug = "".join(ch if ch.isalnum() else "-" for ch in args.corpus.resolve().name.lower())
        settings = settings.with_overrides(corpus=args.corpus, collection=f"eval-{slug}")
    app = app_for(settings)
    try:
        if args.corpus:
            indexed = app.ingest([args.corpus], rebuild=True)
            sys.stderr.write(f"rag eval: indexed {args.corpus} afresh: {indexed.summary()}\n")
        if args.compare:
            from rag.eval.runner import run_compare

            summaries = run_compare(
                app,
                args.gold or DEFAULT_GOLD,
                args.out,
                limit=args.limit,
                retrieval_only=args.retrieval_only,
            )
            report = {"summary": summaries[0]}
        elif args.retrieval_only and not args.mode:
            from rag.eval.runner import run_retrieval_table

            report = run_retrieval_table(app, args.gold or DEFAULT_GOLD, args.out, limit=args.limit)
            summaries = report["configs"]
        else:
            report = run_eval(
                app,
                args.gold or DEFAULT_GOLD,
                args.out,
                retrieval_only=args.retrieval_only,
                mode=args.mode,
                limit=args.limit,
            )
            summaries = [report["summary"]]
    finally:
        app.close()
    print(summary_table(summaries))
    print(f"\nreport: {args.out / 'report.md'}")
    if args.check:
        from rag.eval.gate import DEFAULT_THRESHOLDS, failures, load_thresholds

        failed = failures(
            report["summary"],
            load_thresholds(args.thresholds or DEFAULT_THRESHOLDS),
            args.retrieval_only,
        )
        for line in failed:
            sys.stderr.write(f"rag eval: below threshold: {line}\n")
        if failed:
            return 1
        sys.stderr.write("rag eval: all metrics meet their thresholds\n")
    return 0


def _eval_claims(args, settings) -> int:
    from rag.eval.claims import DEFAULT_CLAIMS, measure_candidates

    claims_path = Path(args.claims) if args.claims else DEFAULT_CLAIMS
    app = app_for(settings)
    try:
        text, result = measure_candidates(app, claims_path, lexical_only=args.lexical_only)
    finally:
        app.close()
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "claims.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        (args.out / "claims.md").write_text(text + "\n", encoding="utf-8")
        sys.stderr.write(f"\nreport: {args.out / 'claims.md'}\n")
    return 0
