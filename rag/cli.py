"""The `rag` command: a thin shell over rag.app. Each command group lives in its own
function; errors become one line on stderr and an exit code."""

from __future__ import annotations

import json
import os
import sys

from rag.cli_app import app_for, on_event, open_backend
from rag.cli_eval import cmd_eval
from rag.cli_parser import build_parser
from rag.cli_servers import cmd_mcp, cmd_serve, cmd_ui
from rag.cli_users import cmd_users
from rag.errors import RagError
from rag.settings import load_settings


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


def _filters(args) -> dict:
    return {"sources": args.sources, "kinds": args.kinds}


def cmd_ingest(args, settings) -> int:
    from rag.types import IngestReport

    bar = None

    def emit(event: dict) -> None:
        nonlocal bar
        if event.get("event") != "progress":
            return on_event(event)
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
        with open_backend(settings) as backend:
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
    with open_backend(settings) as backend:
        out = backend.run("search", {"query": args.query, **_filters(args)}, on_event)
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
    with open_backend(settings) as backend:
        sources = backend.run("sources", {}, on_event)
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
            on_event(event)

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
    with open_backend(settings) as backend:
        if args.json:
            answer = backend.run("ask", {"question": args.question, **_filters(args)}, on_event)
            print(json.dumps(answer, ensure_ascii=False))
        else:
            _stream_answer(backend, args.question, args)
    return 0


def cmd_chat(args, settings) -> int:
    with open_backend(settings) as backend:
        if args.list:
            for c in backend.run("conversations", {}, on_event):
                print(f"{c['id']}  {c['title']}")
            return 0
        cid = None
        if args.resume:
            if args.resume == "latest":
                latest = backend.run("conversations", {"limit": 1}, on_event)
                cid = latest[0]["id"] if latest else None
            else:
                cid = args.resume
            turns = backend.run("messages", {"conversation_id": cid}, on_event) if cid else []
            if cid is None or (args.resume != "latest" and not turns):
                from rag.errors import BadInput

                raise BadInput("no conversation to resume", "start one with: rag chat")
            for turn in turns:
                print(("you> " if turn["role"] == "user" else "rag> ") + turn["content"])
        cid = cid or backend.run("new-conversation", {}, on_event)["id"]
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


def cmd_feedback(args, settings) -> int:
    app = app_for(settings)
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
    "mcp": cmd_mcp,
    "ui": cmd_ui,
    "feedback": cmd_feedback,
    "eval": cmd_eval,
    "ingest": cmd_ingest,
    "search": cmd_search,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "sources": cmd_sources,
    "users": cmd_users,
}

if __name__ == "__main__":
    sys.exit(main())
