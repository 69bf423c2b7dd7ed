"""`rag mcp`: the assistant as a Model Context Protocol server on stdio, for MCP clients (Claude
Desktop, editors, agents), built with the mcp SDK's MCPServer (mcp 2.x).

Two tools, each returning structured content and a readable text of the same:
- `search(query, top_k)`: the passages retrieved for a query, best first (`rag search --json`);
- `ask(question, top_k)`: the verified answer with its [n] markers, the cited passages quoted
  in full, and whether rag declined (`rag ask --json`, ../shared/CONTRACTS.md).

A RagError comes back as a tool error whose text is its one-line message and whose structured
content is the JSON API's error body; the server goes on. stdout carries the protocol only: the
SDK points fd 1 at stderr while it serves, and the app's notes go to stderr. The index is built
on first use when it is empty, as `rag serve` does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from rag import __version__
from rag.errors import MissingModel, RagError, error_body
from rag.question import MAX_QUESTION_CHARS, clean_question
from rag.settings import MAX_TOP_K

if TYPE_CHECKING:
    from rag.app import RagApp


Question = Annotated[
    str,
    Field(
        max_length=MAX_QUESTION_CHARS,
        description="a question about the indexed documents, in plain words",
    ),
]
Query = Annotated[
    str, Field(max_length=MAX_QUESTION_CHARS, description="what to look for in the documents")
]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description="passages to retrieve")]


# -- what the tools return (the schemas name the fields scripts rely on; more may follow) -------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PassageOut(_Open):
    rank: int
    source: str = Field(description="the document, relative to its corpus folder's parent")
    title: str
    section: str = Field(description="the heading the passage sits under, or empty")
    text: str = Field(description="a verbatim span of the source document")
    score: float


class CitationOut(_Open):
    n: int = Field(description="the number of the answer's [n] markers that cite this passage")
    source: str
    title: str
    section: str
    text: str = Field(description="the cited passage, a verbatim span of the source document")
    score: float


class SearchOut(_Open):
    query: str
    mode: str
    passages: list[PassageOut]


class AskOut(_Open):
    question: str
    answer: str = Field(description="the verified answer; each sentence carries its [n] marker")
    abstained: bool = Field(
        description="true when rag declined: the documents do not hold the answer, `answer` "
        "says so and `citations` is empty"
    )
    citations: list[CitationOut]
    passages: list[PassageOut] = Field(description="everything retrieved, best first")
    mode: str
    model: str
    timings_ms: dict[str, int]


# -- readable text beside the structured content -----------------------------------------------
def _where(item: dict) -> str:
    return item["source"] + (f" — {item['section']}" if item.get("section") else "")


def search_text(out: dict) -> str:
    if not out["passages"]:
        return "No passages found."
    lines = []
    for p in out["passages"]:
        lines.append(f"[{p['rank']}] {_where(p)} (score {p['score']:.4f})\n{p['text'].strip()}")
    return "\n\n".join(lines)


def ask_text(out: dict) -> str:
    text = out["answer"].strip()
    if out["abstained"]:
        return f"{text}\n\n(rag declined: the documents do not hold the answer.)"
    if out["citations"]:
        quotes = [f'[{c["n"]}] {_where(c)}\n"{c["text"].strip()}"' for c in out["citations"]]
        text += "\n\nSources:\n" + "\n\n".join(quotes)
    return text


def _result(out: dict, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=out)


def _error(exc: RagError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=exc.one_line())],
        structured_content=error_body(exc),
        is_error=True,
    )


def _stderr(line: str) -> None:
    sys.stderr.write(f"rag mcp: {line}\n")
    sys.stderr.flush()


# -- the server ---------------------------------------------------------------------------------
class RagTools:
    """The tools' work on one app, callable without the protocol (the SDK runs each call on a
    worker thread; the app's locks keep the store and the model to one caller at a time)."""

    def __init__(self, app: RagApp):
        self.app = app

    def _ensure_index(self) -> None:
        report = self.app.ensure_index()
        if report is not None:
            _stderr(f"indexed the corpus: {report.summary()}")

    def search(self, query: str, top_k: int) -> dict:
        query = clean_question(query)  # before the index: a bad query fails at once
        self._ensure_index()
        try:
            expansion = self.app.expand(query)
        except MissingModel as exc:  # search needs no model: without one, the question alone
            _stderr(f"searching with the question alone: {exc.one_line()}")
            expansion = ""
        hits = self.app.search(query, top_k=top_k, expansion=expansion)
        out = {
            "query": query,
            "mode": self.app.settings.mode,
            "passages": [h.to_json() for h in hits],
        }
        if expansion:
            out["expansion"] = expansion
        return out

    def ask(self, question: str, top_k: int) -> dict:
        question = clean_question(question)
        self._ensure_index()
        return self.app.ask(question, top_k=top_k).to_json()


def build_server(app: RagApp) -> MCPServer:
    tools = RagTools(app)
    default_k = min(max(app.settings.top_k, 1), MAX_TOP_K)
    server = MCPServer(
        "rag",
        title="rag: ask your documents, offline",
        version=__version__,
        instructions="Answers questions from the user's indexed documents with a local model. "
        "`ask` gives a checked answer whose [n] markers point at quoted passages, or says "
        "the documents do not hold the answer; `search` gives the passages alone.",
        log_level="WARNING",
    )

    def search(query: Query, top_k: TopK = default_k) -> Annotated[CallToolResult, SearchOut]:
        """Search the indexed documents (hybrid keyword and vector search) and return the
        passages found, best first, each with its source document, section, verbatim text and
        score."""
        try:
            out = tools.search(query, top_k)
        except RagError as exc:
            return _error(exc)
        return _result(out, search_text(out))

    def ask(question: Question, top_k: TopK = default_k) -> Annotated[CallToolResult, AskOut]:
        """Answer a question from the indexed documents with the local model. Every sentence of
        the answer is checked against the passage its [n] marker cites; `citations` quotes those
        passages. When the documents do not hold the answer, rag declines (`abstained`: true)
        instead of guessing."""
        try:
            out = tools.ask(question, top_k)
        except RagError as exc:
            return _error(exc)
        return _result(out, ask_text(out))

    server.add_tool(search, name="search", title="Search the documents")
    server.add_tool(ask, name="ask", title="Ask the documents")
    return server
