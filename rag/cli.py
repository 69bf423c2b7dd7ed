"""The `rag` command: a thin shell over rag.app. Each command group lives in its own
function; errors become one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from rag.errors import RagError
from rag.settings import load_settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2: scripts parse this
        sys.stderr.write(f"rag: error: {message} (see: {self.prog} --help)\n")
        sys.exit(2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        dest="data_dir",
        help="where the index, models and history live (RAG_DATA_DIR)",
    )
    p.add_argument(
        "--qdrant-url",
        dest="qdrant_url",
        help="use this Qdrant server instead of the embedded store",
    )
    p.add_argument("--collection", help="Qdrant collection name (default: rag)")


def _retrieval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode", choices=["hybrid", "dense", "sparse"], help="retrieval mode (default: hybrid)"
    )
    p.add_argument("--top-k", dest="top_k", type=int, help="passages to retrieve (default: 5)")
    p.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="NAME",
        help="search only this document (repeatable)",
    )
    p.add_argument(
        "--kind",
        action="append",
        dest="kinds",
        choices=["prose", "table_row", "list_item", "code"],
        help="search only passages of this kind",
    )
    p.add_argument(
        "--no-expand",
        action="store_true",
        help="search with the question alone, without the LLM's hypothetical answer "
        "(faster, weaker; RAG_EXPAND_QUERY=0)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rag",
        description="Ask questions about your documents, offline, with verified citations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ingest", help="index documents (default: the corpus folder)")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (.txt .md .html .pdf)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _common(p)

    p = sub.add_parser("search", help="show the passages retrieved for a query")
    p.add_argument("query")
    p.add_argument("--json", action="store_true")
    _retrieval(p)
    _common(p)

    p = sub.add_parser("ask", help="answer a question from the documents, with citations")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object (see CONTRACTS)")
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf (RAG_LLM)")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="keep the model's citations unchecked (for comparison)",
    )
    _retrieval(p)
    _common(p)

    p = sub.add_parser(
        "chat", help="an interactive conversation; follow-ups are understood in context"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="ID",
        help="continue the last (or the given) conversation",
    )
    p.add_argument("--list", action="store_true", help="list past conversations")
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf (RAG_LLM)")
    _retrieval(p)
    _common(p)

    p = sub.add_parser(
        "eval",
        help="score retrieval and answers on a gold question set "
        "(runs in its own process, never through rag serve)",
    )
    p.add_argument(
        "--gold",
        type=Path,
        help="gold questions, JSONL (default: eval/gold.jsonl, the guides' dev split)",
    )
    p.add_argument(
        "--lexical-only",
        action="store_true",
        help="with --claims: only the fast lexical checker, no LLM",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        help="the folder the gold file is about: indexed afresh in a collection of its own "
        "before the questions run",
    )
    p.add_argument(
        "--claims",
        nargs="?",
        const="",
        metavar="FILE",
        help="measure the citation checker alone on a labelled claim set "
        "(default: eval/claims.jsonl): false-accept and false-reject rates per split",
    )
    p.add_argument(
        "--out", type=Path, default=Path("eval/out"), help="report folder (default: eval/out)"
    )
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument(
        "--retrieval-only",
        action="store_true",
        help="retrieval metrics only, no answers: seconds once the questions' expansions "
        "are cached (the first run writes them, about a minute)",
    )
    p.add_argument(
        "--no-expand",
        action="store_true",
        help="search with the questions alone, without the LLM's hypothetical answers",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="do not check citations (to measure what checking buys)",
    )
    p.add_argument("--mode", choices=["hybrid", "dense", "sparse"])
    p.add_argument("--top-k", dest="top_k", type=int)
    p.add_argument(
        "--compare",
        action="store_true",
        help="run the three modes, citations unchecked, the 0.5B model and a llama-index "
        "baseline side by side",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a metric is below its floor in the thresholds file",
    )
    p.add_argument(
        "--thresholds", type=Path, help="floors for --check (default: eval/thresholds.toml)"
    )
    _common(p)

    p = sub.add_parser(
        "ui",
        help="serve the chat page (Gradio), and the JSON API the other commands use "
        "(see rag serve)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other needs --auth)",
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="user:password, required off localhost (RAG_UI_AUTH)")
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf")
    p.add_argument(
        "--api-port",
        dest="api_port",
        type=int,
        default=0,
        help="port of the JSON API the rag commands use, on 127.0.0.1 "
        "(default 0: a free one, written to RAG_DATA_DIR/server.json)",
    )
    _common(p)

    p = sub.add_parser(
        "serve",
        help="own the index and the model and serve the local JSON API that the other commands use",
        description="Owns the index and the model and serves a JSON API (and an OpenAI-compatible "
        "/v1/chat/completions). While it runs, rag ask, search, chat, ingest and sources go "
        "through it by themselves (found through RAG_DATA_DIR/server.json, which holds the API "
        "token, readable by you only); rag eval and rag feedback run in their own process.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=0,
        help="port (default 0: a free one, written to RAG_DATA_DIR/server.json)",
    )
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf (RAG_LLM)")
    _common(p)

    p = sub.add_parser(
        "feedback",
        help="export the thumbs up/down given in the UI (runs in its own process, server or not)",
    )
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", type=Path, help="JSONL file (default: stdout)")
    _common(p)

    p = sub.add_parser("sources", help="list the indexed documents")
    p.add_argument("--json", action="store_true")
    _common(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        k: getattr(args, k, None)
        for k in ("data_dir", "qdrant_url", "collection", "mode", "top_k", "llm")
    }
    if getattr(args, "no_verify", False):
        overrides["verify_citations"] = False
    if getattr(args, "no_expand", False):
        overrides["expand_query"] = False
    try:
        settings = load_settings(**overrides)
        handler = COMMANDS[args.command]
        return handler(args, settings) or 0
    except RagError as exc:
        if os.environ.get("RAG_DEBUG"):
            raise
        sys.stderr.write(f"rag: error: {exc.one_line()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("rag: interrupted\n")
        return 130


def _note(line: str) -> None:
    sys.stderr.write(f"rag: note: {line}\n")


def _app(settings):
    from rag.app import RagApp

    return RagApp(settings, notify=_note)


# -- where the work runs ------------------------------------------------------------------------
# ask, search, chat, ingest and sources are operations (rag/operations.py) that report
# through events and return a JSON-able result. They run on the server that owns the index when
# one is running, else here; each command renders the events and the result in one place, so
# its output is the same either way.


class _InProcess:
    """The operations run here, on an app of this process (no server owns the index)."""

    def __init__(self, settings):
        self.app = _app(settings)

    def run(self, op: str, request: dict, emit):
        from rag.operations import OPERATIONS

        return OPERATIONS[op](self.app, request, emit)

    def close(self) -> None:
        self.app.close()


@contextmanager
def _backend(settings):
    from rag.remote import Remote, find_server

    server = find_server(settings)
    backend = Remote(server, settings) if server else _InProcess(settings)
    try:
        yield backend
    finally:
        backend.close()


def _on_event(event: dict) -> None:
    if event.get("event") == "note":
        _note(event.get("text", ""))


def _filters(args) -> dict:
    return {"sources": args.sources, "kinds": args.kinds}


def cmd_ingest(args, settings) -> int:
    from rag.types import IngestReport

    bar = None

    def emit(event: dict) -> None:
        nonlocal bar
        if event.get("event") != "progress":
            return _on_event(event)
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=event["total"], unit="file", file=sys.stderr, disable=None, desc="ingest"
            )
        bar.n = event["done"]
        bar.set_postfix_str(event["source"][-40:], refresh=True)

    # Absolute, as a server resolves paths against its own working directory (the source names
    # do not change: they are taken relative to each root's absolute parent either way).
    paths = [os.path.abspath(p) for p in args.paths]
    try:
        with _backend(settings) as backend:
            data = backend.run("ingest", {"paths": paths, "rebuild": args.rebuild}, emit)
    finally:
        if bar is not None:
            bar.close()
    report = IngestReport(
        **{**data, "skipped": [(s["path"], s["reason"]) for s in data["skipped"]]}
    )
    if report.rebuilt:
        sys.stderr.write(f"rebuilt the index: {report.rebuilt}\n")
    for path, reason in report.skipped:
        sys.stderr.write(f"skipped {path}: {reason}\n")
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(report.summary())
    return 0


def cmd_search(args, settings) -> int:
    with _backend(settings) as backend:
        out = backend.run("search", {"query": args.query, **_filters(args)}, _on_event)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if out.get("expansion"):
        sys.stderr.write(f"(searched with the model's guess: {out['expansion']})\n")
    if not out["passages"]:
        print("no passages found")
    for h in out["passages"]:
        text = " ".join(h["text"].split())
        print(
            f"[{h['rank']}] {h['score']:.4f}  {h['source']}"
            + (f" — {h['section']}" if h["section"] else "")
        )
        print(f"    {text[:300]}{'…' if len(text) > 300 else ''}")
    return 0


def cmd_sources(args, settings) -> int:
    with _backend(settings) as backend:
        sources = backend.run("sources", {}, _on_event)
    if args.json:
        print(json.dumps(sources))
    else:
        for name, n in sorted(sources.items()):
            print(f"{n:6d}  {name}")
    return 0


def _print_sources(answer: dict) -> None:
    for c in answer["citations"]:
        where = c["source"] + (f" — {c['section']}" if c["section"] else "")
        text = " ".join(c["text"].split())
        print(f"  [{c['n']}] {where}\n      {text[:400]}{'…' if len(text) > 400 else ''}")


def _stream_answer(backend, question: str, args, conversation_id: str | None = None) -> dict:
    """Print verified sentences as they settle; return the final answer (`rag ask --json`)."""
    out = sys.stdout

    def emit(event: dict) -> None:
        if event.get("event") == "sentence":
            out.write(event["text"] + " ")
            out.flush()
        else:
            _on_event(event)

    request = {"question": question, **_filters(args)}
    if conversation_id:
        request["conversation_id"] = conversation_id
    answer = backend.run("ask", request, emit)
    out.write("\n")
    if answer["citations"]:
        print("\nSources:")
        _print_sources(answer)
    if answer.get("standalone_question"):
        sys.stderr.write(f"(understood as: {answer['standalone_question']})\n")
    return answer


def cmd_ask(args, settings) -> int:
    with _backend(settings) as backend:
        if args.json:
            answer = backend.run("ask", {"question": args.question, **_filters(args)}, _on_event)
            print(json.dumps(answer, ensure_ascii=False))
        else:
            _stream_answer(backend, args.question, args)
    return 0


def cmd_chat(args, settings) -> int:
    with _backend(settings) as backend:
        if args.list:
            for c in backend.run("conversations", {}, _on_event):
                print(f"{c['id']}  {c['title']}")
            return 0
        cid = None
        if args.resume:
            if args.resume == "latest":
                latest = backend.run("conversations", {"limit": 1}, _on_event)
                cid = latest[0]["id"] if latest else None
            else:
                cid = args.resume
            turns = backend.run("messages", {"conversation_id": cid}, _on_event) if cid else []
            if cid is None or (args.resume != "latest" and not turns):
                from rag.errors import BadInput

                raise BadInput("no conversation to resume", "start one with: rag chat")
            for turn in turns:
                print(("you> " if turn["role"] == "user" else "rag> ") + turn["content"])
        cid = cid or backend.run("new-conversation", {}, _on_event)["id"]
        sys.stderr.write("Ask about your documents; an empty line or Ctrl-D ends the chat.\n")
        while True:
            try:
                question = input("you> ").strip()
            except EOFError:
                break
            if not question:
                break
            sys.stdout.write("rag> ")
            try:
                _stream_answer(backend, question, args, conversation_id=cid)
            except RagError as exc:
                if exc.exit_code != 2:
                    raise
                print(exc.one_line())
        sys.stderr.write(f"conversation saved; resume it with: rag chat --resume {cid}\n")
    return 0


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
    app = _app(settings)
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
    app = _app(settings)
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


def _stop_on_sigterm() -> None:
    """SIGTERM ends a server as Ctrl-C does: through its cleanup, so server.json goes too."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_ui(args, settings) -> int:
    from rag.ui.server import serve

    _stop_on_sigterm()
    app = _app(settings)
    try:
        sys.stderr.write(f"rag ui: serving on http://{args.host}:{args.port} (Ctrl-C stops it)\n")
        serve(
            app,
            host=args.host,
            port=args.port,
            auth=args.auth or settings.ui_auth or None,
            api_port=args.api_port,
        )
    finally:
        app.close()
    return 0


def cmd_serve(args, settings) -> int:
    from rag.server import ApiServer

    _stop_on_sigterm()
    app = _app(settings)
    try:
        api = ApiServer(app, host=args.host, port=args.port)
        try:
            api.start()
            sys.stderr.write(
                f"rag serve: the API is on {api.url}, its token in {api.file} (Ctrl-C stops it)\n"
            )
            if args.host not in ("127.0.0.1", "localhost", "::1"):
                sys.stderr.write(
                    "rag serve: note: beyond this machine the token travels unencrypted "
                    "(plain HTTP)\n"
                )
            # Served already: commands that arrive meanwhile wait for the index, not fail on its
            # lock.
            report = app.ensure_index()
            if report is not None:
                sys.stderr.write(f"indexed the corpus: {report.summary()}\n")
            api.wait()
        except KeyboardInterrupt:
            sys.stderr.write("rag serve: stopped\n")
        finally:
            api.close()
    finally:
        app.close()
    return 0


def cmd_feedback(args, settings) -> int:
    app = _app(settings)
    try:
        rows = app.history.feedback()
    finally:
        app.close()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.out:
        args.out.write_text(lines, encoding="utf-8")
        sys.stderr.write(f"wrote {len(rows)} feedback records to {args.out}\n")
    else:
        sys.stdout.write(lines)
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "ui": cmd_ui,
    "feedback": cmd_feedback,
    "eval": cmd_eval,
    "ingest": cmd_ingest,
    "search": cmd_search,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "sources": cmd_sources,
}

if __name__ == "__main__":
    sys.exit(main())
