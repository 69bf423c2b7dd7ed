"""The operations behind `rag ask`, `search`, `chat`, `ingest` and `sources`: one function each,
taking an app, a JSON request and an `emit` for events (notes, progress, verified sentences),
returning a JSON-able result. The CLI runs them in its own process when no server owns the
index, and rag/server.py runs them for it when one does, so what a command prints does not
depend on where its work ran."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import BadInput, MissingModel

if TYPE_CHECKING:
    from rag.app import RagApp

Emit = Callable[[dict], None]


def _text(req: dict, key: str, required: bool = True) -> str | None:
    value = req.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadInput(f"the request needs a text field {key!r}", "see rag/server.py for the API")
    return value


def _names(req: dict, key: str) -> list[str] | None:
    value = req.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(
            f"the request field {key!r} must be a list of strings", "see rag/server.py for the API"
        )
    return value or None


def op_sources(app: RagApp, req: dict, emit: Emit) -> dict:
    return app.sources()


def op_search(app: RagApp, req: dict, emit: Emit) -> dict:
    from rag.question import clean_question

    # Cleaned: raw argv may hold undecodable bytes (lone surrogates).
    query = clean_question(_text(req, "query"))
    sources, kinds = _names(req, "sources"), _names(req, "kinds")
    app.ensure_index()
    try:
        expansion = app.expand(query, sources=sources, kinds=kinds)
    except MissingModel as exc:
        # Search needs no model: without one it still works, only without the guess.
        emit(
            {
                "event": "note",
                "text": f"searching with the question alone: {exc.one_line()} "
                "(or pass --no-expand)",
            }
        )
        expansion = ""
    hits = app.search(query, sources=sources, kinds=kinds, expansion=expansion)
    out = {"query": query, "mode": app.settings.mode, "passages": [h.to_json() for h in hits]}
    if expansion:
        out["expansion"] = expansion
    return out


def op_ask(app: RagApp, req: dict, emit: Emit) -> dict:
    """Verified sentences as they settle, then the answer (`rag ask --json`)."""
    stream = app.ask_stream(
        _text(req, "question"),
        sources=_names(req, "sources"),
        kinds=_names(req, "kinds"),
        conversation_id=_text(req, "conversation_id", required=False),
    )
    with closing(stream):  # a caller that leaves mid-answer frees the model at once
        for event in stream:
            if event.kind == "sentence":
                emit({"event": "sentence", "text": event.text})
            elif event.kind == "done":
                return event.answer.to_json()
    raise RuntimeError("the answer stream ended without an answer")


def op_ingest(app: RagApp, req: dict, emit: Emit) -> dict:
    paths = _names(req, "paths")
    relative = [p for p in paths or [] if not os.path.isabs(p)]
    if relative:
        # The server's working directory is not the caller's.
        raise BadInput(
            f"ingest paths must be absolute: {', '.join(relative)}",
            "pass absolute paths (rag ingest does)",
        )

    def progress(done: int, total: int, source: str) -> None:
        emit({"event": "progress", "done": done, "total": total, "source": source})

    report = app.ingest(
        [Path(p) for p in paths] if paths else None,
        rebuild=bool(req.get("rebuild")),
        progress=progress,
    )
    return report.to_json()


def op_conversations(app: RagApp, req: dict, emit: Emit) -> list[dict]:
    limit = req.get("limit", 50)
    if not isinstance(limit, int) or limit < 1:
        raise BadInput("the request field 'limit' must be a positive integer")
    return app.history.conversations(limit=limit)


def op_messages(app: RagApp, req: dict, emit: Emit) -> list[dict]:
    return app.history.messages(_text(req, "conversation_id"))


def op_new_conversation(app: RagApp, req: dict, emit: Emit) -> dict:
    return {"id": app.history.new_conversation(title=_text(req, "title", required=False) or "")}


OPERATIONS: dict[str, Callable[[RagApp, dict, Emit], Any]] = {
    "ask": op_ask,
    "search": op_search,
    "ingest": op_ingest,
    "sources": op_sources,
    "conversations": op_conversations,
    "messages": op_messages,
    "new-conversation": op_new_conversation,
}
GET_OPERATIONS = {"sources", "conversations"}  # no input: plain JSON for curl and scripts
