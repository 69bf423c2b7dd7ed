"""Finding and talking to the running `rag serve` / `rag ui` that owns the index (rag/server.py).

Discovery: while it listens, the server keeps RAG_DATA_DIR/server.json (mode 0600): its url,
pid and a random token. A command uses it when the file is this user's, names the same
collection and store, its pid is alive and the server answers a health check with that pid.
Anything else is a stale file: ignored, and removed when its process is gone, so a killed
server never stops the next command from opening the index itself.

The wire: every request carries `Authorization: Bearer <token>`. POST /v1/<operation> takes a
JSON object and answers with NDJSON events (notes, progress, sentences), the last one either
`{"event": "result", "data": …}` or `{"event": "error", "error", "hint", "exit", "kind"}`. An
error is raised here as the same RagError class, so the CLI prints the same line and exits
with the same code as when it runs the operation itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from rag import errors
from rag.errors import RagError
from rag.settings import Settings

SERVER_FILE = "server.json"
PROBE_TIMEOUT_S = 3.0
# The settings a command may differ in from the server's and still get what it would get
# alone: they shape one request (retrieval, expansion, the model and its answer). Those that
# shape the index itself (data dir, collection, store, embedding model) are the server's.
REQUEST_SETTINGS = (
    "corpus",
    "mode",
    "top_k",
    "expand_query",
    "expand_below",
    "llm",
    "n_ctx",
    "threads",
    "max_tokens",
    "temperature",
    "context_passages",
    "min_relevance",
    "verify_citations",
    "judge_citations",
    "judge_threshold",
    "chunk_tokens",
    "chunk_overlap",
)

Emit = Callable[[dict], None]


def server_file(data_dir: Path) -> Path:
    return Path(data_dir) / SERVER_FILE


def write_server_file(path: Path, info: dict) -> None:
    """Atomically, readable by this user only: the token is the key to the owner's API."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # a leftover tmp file keeps its old mode through O_TRUNC
        json.dump(info, f)
    os.replace(tmp, path)


def read_server_file(path: Path) -> dict | None:
    """The file's content when it is this user's own and well formed, else None."""
    try:
        st = path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # planted or loosened by someone else: never send our questions there
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k), t) for k, t in (("url", str), ("token", str), ("pid", int))
    ):
        return None
    return info


def remove_server_file(path: Path, token: str) -> None:
    """Remove the file if it still holds `token` (a newer server may have replaced it)."""
    info = read_server_file(path)
    if info is not None and info["token"] == token:
        try:
            path.unlink()
        except OSError:
            pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and the health check decides
    except (OverflowError, ValueError):
        return False
    return True


@dataclass
class ServerInfo:
    url: str
    token: str
    pid: int


def live_server(data_dir: Path) -> tuple[ServerInfo, dict] | None:
    """The server that RAG_DATA_DIR/server.json names, if it is alive and answers."""
    path = server_file(data_dir)
    info = read_server_file(path)
    if info is None:
        return None
    if not pid_alive(info["pid"]):
        remove_server_file(path, info["token"])
        return None
    server = ServerInfo(info["url"].rstrip("/"), info["token"], info["pid"])
    try:
        health = _call_json(server, "GET", "/v1/health", timeout=PROBE_TIMEOUT_S)
    except (RagError, OSError, ValueError, HTTPException):
        return None  # hung, or the pid now belongs to another process: not ours to use
    if not isinstance(health, dict) or health.get("pid") != server.pid:
        return None
    return server, info


def find_server(settings: Settings) -> ServerInfo | None:
    """The running server that owns the index these settings name, or None."""
    found = live_server(settings.data_dir)
    if found is None:
        return None
    server, info = found
    if (
        info.get("collection") != settings.collection
        or info.get("qdrant_url", "") != settings.qdrant_url
    ):
        return None  # it owns another index in this data dir; this one is free to open
    return server


def request_settings(settings: Settings) -> dict:
    out = {}
    for name in REQUEST_SETTINGS:
        value = getattr(settings, name)
        if name == "llm" and Path(value).expanduser().exists():
            value = os.path.abspath(
                Path(value).expanduser()
            )  # a .gguf path, from our working directory
        out[name] = os.path.abspath(value) if isinstance(value, Path) else value
    return out


def error_from(body: Any, status: int | None = None) -> RagError:
    """The RagError a server's error object stands for: same class, message, hint and code."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return RagError(
            f"the rag server answered with an unreadable error (HTTP {status})",
            "see the server's log",
        )
    cls = getattr(errors, str(body.get("kind", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, RagError)):
        cls = RagError
    exc = cls(body["error"], str(body.get("hint") or ""))
    code = body.get("exit")
    if isinstance(code, int) and code != exc.exit_code:
        exc.exit_code = code
    return exc


# Loopback needs no proxy, and an http_proxy from the environment must not see the token.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _open(server: ServerInfo, method: str, path: str, body: dict | None, timeout: float | None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {server.token}",
            "Content-Type": "application/json",
            "Accept": "application/x-ndjson, application/json",
        },
    )
    try:
        return _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        raise error_from(body, exc.code) from None


def _call_json(server: ServerInfo, method: str, path: str, timeout: float | None) -> Any:
    with _open(server, method, path, None, timeout) as resp:
        return json.loads(resp.read())


class Remote:
    """Runs an operation on the server, with the same interface as running it in-process:
    `run(op, request, emit)` hands every event but the last to `emit` and returns the result."""

    def __init__(self, server: ServerInfo, settings: Settings):
        self.server = server
        self.settings = request_settings(settings)

    def run(self, op: str, request: dict, emit: Emit) -> Any:
        try:
            # No timeout: an answer may wait its turn for the model behind other questions.
            resp = _open(
                self.server,
                "POST",
                f"/v1/{op}",
                {**request, "settings": self.settings},
                timeout=None,
            )
        except urllib.error.URLError as exc:
            raise self._gone(exc.reason) from None
        except (OSError, HTTPException) as exc:
            raise self._gone(exc) from None
        with resp:
            try:
                for line in resp:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind = event.get("event")
                    if kind == "result":
                        return event.get("data")
                    if kind == "error":
                        raise error_from(event)
                    emit(event)
            except (OSError, ValueError, HTTPException) as exc:
                raise self._gone(exc) from None
        raise self._gone("the reply ended before its result")

    def _gone(self, why) -> RagError:
        return RagError(
            f"the rag server at {self.server.url} (pid {self.server.pid}) "
            f"stopped answering ({why})",
            "run the command again: without a server it opens the index itself",
        )

    def close(self) -> None:
        pass
