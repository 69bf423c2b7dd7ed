"""How a `rag` command reaches the app: notes on stderr, an app of this process, or the
server that owns the index when one runs."""

from __future__ import annotations

import sys
from contextlib import contextmanager


def note(line: str) -> None:
    sys.stderr.write(f"rag: note: {line}\n")


def app_for(settings):
    from rag.app import RagApp

    return RagApp(settings, notify=note)


# -- where the work runs ------------------------------------------------------------------------
# ask, search, chat, ingest and sources are operations (rag/operations.py) that report
# through events and return a JSON-able result. They run on the server that owns the index when
# one is running, else here; each command renders the events and the result in one place, so
# its output is the same either way.


class _InProcess:
    """The operations run here, on an app of this process (no server owns the index)."""

    def __init__(self, settings):
        self.app = app_for(settings)

    def run(self, op: str, request: dict, emit):
        from rag.operations import OPERATIONS

        return OPERATIONS[op](self.app, request, emit)

    def close(self) -> None:
        self.app.close()


@contextmanager
def open_backend(settings):
    from rag.remote import Remote, find_server

    server = find_server(settings)
    backend = Remote(server, settings) if server else _InProcess(settings)
    try:
        yield backend
    finally:
        backend.close()


def on_event(event: dict) -> None:
    if event.get("event") == "note":
        note(event.get("text", ""))
