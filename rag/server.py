"""`rag serve`: the one process that owns the index and the model, and its local JSON API.

The embedded index admits one process (its shards are locked), so a running server is the
index's owner: `rag ask`, `search`, `chat`, `ingest` and `sources` find it through
RAG_DATA_DIR/server.json (rag/remote.py) and send their work here; without a server they run
the very same operations (rag/operations.py) in their own process, so what they print does
not depend on where the work ran. `rag ui` serves the page and this API from one process,
over one RagApp.

The API (every request carries `Authorization: Bearer <token>`, the token in server.json):

    GET  /v1/health                       {"ok", "pid", "data_dir", "collection", "model"}
    POST /v1/ask            {question, sources?, kinds?, conversation_id?, settings?}
    POST /v1/search         {query, sources?, kinds?, settings?}
    POST /v1/ingest         {paths (absolute), rebuild?, settings?}
    POST /v1/sources | /v1/conversations {limit?} | /v1/messages {conversation_id}
         | /v1/new-conversation {title?}
    GET  /v1/sources, /v1/conversations   the result alone, as plain JSON
    GET  /v1/models, POST /v1/chat/completions   OpenAI-compatible (rag/openai_api.py)

A POST answers with NDJSON events: {"event": "note"|"progress"|"sentence", …}, ending with
{"event": "result", "data": …}; `ask`'s result is the `rag ask --json` object. An error before
the first event is an HTTP error status with the body {"error", "hint", "exit", "kind"}; one
after it is that object as the last event. `settings` carries the caller's per-request settings
(rag/remote.py REQUEST_SETTINGS): the server answers with them, not with its own.

Over 300 lines, on purpose: the handler, the reply stream and the server that holds the
token, the lock and the per-request apps are one protocol, read together when it changes.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from rag.app import RagApp
from rag.errors import (
    BadInput,
    CorruptIndex,
    LLMUnavailable,
    MissingModel,
    RagError,
    StoreLocked,
    StoreUnavailable,
    error_body,
)
from rag.openai_api import openai_completion
from rag.operations import GET_OPERATIONS, OPERATIONS, Emit
from rag.remote import (
    REQUEST_SETTINGS,
    live_server,
    remove_server_file,
    server_file,
    write_server_file,
)

MAX_BODY_BYTES = 1 << 20


# -- one request's app: the caller's settings over the server's store and models ----------------


class _RequestApp(RagApp):
    """The caller's per-request settings (its mode, top-k, model…) over the serving app's store,
    history and loaded models, with notes going to the caller. Built per request: cheap, as
    nothing is loaded here. (RagApp.derive loads the embedder and, for the server's own model
    not yet loaded, would load a second copy; this borrows lazily instead.)"""

    def __init__(self, owner: ApiServer, settings, notify):
        super().__init__(settings, notify=notify)
        self._owner = owner
        self._base = owner.app
        self._store_lock = owner.app._store_lock  # one store, one lock
        self._ingest_lock = owner.app._ingest_lock
        self._borrowed = True  # close() leaves the server's store open

    @property
    def store(self):
        return self._base.store

    @property
    def history(self):
        return self._base.history

    def dense(self):
        return self._base.dense()

    def sparse(self):
        return self._base.sparse()

    def llm(self):
        return self._owner.model_app(self.settings).llm()

    def judge_llm(self):
        return self._owner.model_app(self.settings).judge_llm()


# -- HTTP -------------------------------------------------------------------------------------

_STATUS = {
    BadInput: 400,
    MissingModel: 503,
    StoreLocked: 409,
    CorruptIndex: 500,
    StoreUnavailable: 502,
    LLMUnavailable: 502,
}


def _status(exc: RagError) -> int:
    return next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)


class _Reply:
    """One NDJSON reply, begun at its first event: an error before any event goes out as an
    HTTP error status, one after as the stream's last line."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        self.handler = handler
        self.started = False

    def event(self, event: dict) -> None:
        if not self.started:
            self.started = True
            self.handler.send_response(200)
            self.handler.send_header("Content-Type", "application/x-ndjson")
            self.handler.send_header("Cache-Control", "no-store")
            self.handler.end_headers()
        self.handler.wfile.write(json.dumps(event).encode("utf-8") + b"\n")
        self.handler.wfile.flush()

    def fail(self, exc: RagError, kind: str | None = None, status: int | None = None) -> None:
        body = error_body(exc, kind)
        if self.started:
            self.event({"event": "error", **body})
        else:
            self.handler.send_json(status or _status(exc), body)


class _Handler(BaseHTTPRequestHandler):
    server_version = "rag-serve"
    protocol_version = "HTTP/1.0"  # a streamed reply ends when the connection closes

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if self.server.api.app.settings.debug:
            super().log_message(format, *args)

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        api: ApiServer = self.server.api
        path = urlsplit(self.path).path.rstrip("/")
        reply = _Reply(self)
        try:
            if not api.authorized(self.headers.get("Authorization", "")):
                return reply.fail(
                    RagError(
                        "missing or wrong API token",
                        f"send Authorization: Bearer <token>, the token in {api.file}",
                    ),
                    kind="Unauthorized",
                    status=401,
                )
            op = path.removeprefix("/v1/") if path.startswith("/v1/") else None
            if method == "GET" and op == "health":
                return self.send_json(200, api.health())
            if method == "GET" and op == "models":
                return self.send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": api.app.settings.llm, "object": "model", "owned_by": "rag"}
                        ],
                    },
                )
            if method == "POST" and op == "chat/completions":
                return openai_completion(self, api, self._body())
            if op not in OPERATIONS or (method == "GET" and op not in GET_OPERATIONS):
                return reply.fail(
                    BadInput(f"no endpoint {method} {path}", "see rag/server.py for the API"),
                    kind="NotFound",
                    status=404,
                )
            req = self._body() if method == "POST" else {}
            if method == "GET":
                return self.send_json(200, api.run(op, req, lambda event: None))
            result = api.run(op, req, reply.event)
            reply.event({"event": "result", "data": result})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller left; closing its operation freed what it held
        except RagError as exc:
            self._answer_error(reply, exc)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._answer_error(
                reply,
                RagError("the rag server failed on this request", "see the server's log"),
                kind="Internal",
            )

    def _answer_error(self, reply: _Reply, exc: RagError, kind: str | None = None) -> None:
        try:
            reply.fail(exc, kind)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _body(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            raise BadInput(f"the request body must be JSON of at most {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise BadInput("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise BadInput("the request body must be a JSON object")
        return body


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class ApiServer:
    """The API over one RagApp, on a thread of its own: `start()` listens and writes
    server.json, `close()` stops and removes it."""

    def __init__(self, app: RagApp, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.token = secrets.token_urlsafe(32)
        self.file = server_file(app.settings.data_dir)
        self._models: dict[tuple, RagApp] = {}
        self._models_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        cls = _HTTPServer6 if ":" in host else _HTTPServer
        try:
            self.httpd = cls((host, port), _Handler)
        except OSError as exc:
            raise BadInput(
                f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                "choose another --port, or 0 for a free one",
            ) from None
        self.httpd.api = self
        bound = self.httpd.server_address[1]
        # A server bound to every address is reached through loopback by the local CLI.
        near = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        self.url = f"http://[{near}]:{bound}" if ":" in near else f"http://{near}:{bound}"

    def authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        )

    def health(self) -> dict:
        s = self.app.settings
        return {
            "ok": True,
            "pid": os.getpid(),
            "data_dir": str(s.data_dir),
            "collection": s.collection,
            "model": s.llm,
        }

    def model_app(self, settings) -> RagApp:
        """The app whose LLM answers with these settings: the serving app's for its own model,
        else one per other model, loaded on first use and kept."""
        key = (settings.llm, settings.n_ctx, settings.threads)
        base = self.app.settings
        if key == (base.llm, base.n_ctx, base.threads):
            return self.app
        with self._models_lock:
            if key not in self._models:
                self._models[key] = RagApp(
                    base.with_overrides(llm=key[0], n_ctx=key[1], threads=key[2])
                )
            return self._models[key]

    def run(self, op: str, req: dict, emit: Emit) -> Any:
        wanted = req.get("settings") or {}
        if not isinstance(wanted, dict):
            raise BadInput("the request field 'settings' must be an object")
        overrides = {k: v for k, v in wanted.items() if k in REQUEST_SETTINGS}
        settings = self.app.settings.with_overrides(**overrides)
        app = _RequestApp(self, settings, notify=lambda line: emit({"event": "note", "text": line}))
        return OPERATIONS[op](app, req, emit)

    def start(self) -> ApiServer:
        try:
            found = live_server(self.app.settings.data_dir)
            if found is not None:
                raise StoreLocked(
                    f"a rag server (pid {found[0].pid}) already serves "
                    f"{self.app.settings.data_dir} at {found[0].url}",
                    "rag commands use it by themselves; stop it first to start another",
                )
            _ = (
                self.app.store
            )  # own the index from the start: a held one fails here, not at the first question
        except BaseException:
            self.httpd.server_close()
            raise
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="rag-api", daemon=True
        )
        self._thread.start()
        s = self.app.settings
        write_server_file(
            self.file,
            {
                "url": self.url,
                "pid": os.getpid(),
                "token": self.token,
                "collection": s.collection,
                "qdrant_url": s.qdrant_url,
                "started_at": time.time(),
            },
        )
        return self

    def wait(self) -> None:
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)  # short joins, so Ctrl-C and SIGTERM are heard at once

    def close(self) -> None:
        if self._thread is not None:
            remove_server_file(self.file, self.token)
            self.httpd.shutdown()
            self._thread = None
        self.httpd.server_close()
        for other in self._models.values():
            other.close()
