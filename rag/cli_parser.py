"""The `rag` command line's arguments: one parser, every command and option with its help."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="files or folders (.txt .md .html .pdf .docx .pptx .xlsx .csv .epub .ipynb)",
    )
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
        "mcp",
        help="serve the search and ask tools to an MCP client over stdio (the client starts it)",
        description="A Model Context Protocol server on stdin/stdout, for MCP clients such as "
        "Claude Desktop: a search tool (the passages found) and an ask tool (the verified answer, "
        "its citations with their quoted passages, or a refusal). Logs go to stderr. It opens "
        "the index itself: with the embedded store, not beside a running rag serve or rag ui "
        "on the same RAG_DATA_DIR.",
    )
    p.add_argument("--model", dest="llm", help="model preset or path to a .gguf (RAG_LLM)")
    p.add_argument(
        "--mode", choices=["hybrid", "dense", "sparse"], help="retrieval mode (default: hybrid)"
    )
    p.add_argument(
        "--top-k", dest="top_k", type=int, help="the tools' default passages to retrieve (5)"
    )
    p.add_argument(
        "--no-expand",
        action="store_true",
        help="search with the question alone, without the LLM's hypothetical answer",
    )
    _common(p)

    p = sub.add_parser(
        "feedback",
        help="export the thumbs up/down given in the UI (runs in its own process, server or not)",
    )
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", type=Path, help="JSONL file (default: stdout)")
    _common(p)

    p = sub.add_parser(
        "users",
        help="manage the page's accounts: add NAME [--admin], passwd NAME, remove NAME, list",
        description="Accounts for rag ui. A reader asks and sees their own conversations; an "
        "admin also adds and removes documents. The password is asked twice at a terminal, or "
        "read from the first line of stdin.",
    )
    p.add_argument("action", choices=["add", "passwd", "remove", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--admin", action="store_true", help="with add: may change the documents")
    p.add_argument("--json", action="store_true", help="with list")
    _common(p)

    p = sub.add_parser("sources", help="list the indexed documents")
    p.add_argument("--json", action="store_true")
    _common(p)
    return parser
