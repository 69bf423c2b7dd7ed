"""`rag mcp` (issue #17): an MCP server on stdio with `search` and `ask` tools, driven here by
the mcp package's own client (stdio_client + ClientSession) over a real process: the index it
builds itself on first use, Qdrant Edge, the embedder and the 135M model, as in test_serve.

One server for the module; its stderr goes to a log, its stdout must carry the protocol only.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from helpers import CONTRACT_FIELDS, plumbing_env
from mcp import ClientSession, StdioServerParameters, stdio_client

from rag.loaders import find_files, load
from rag.question import MAX_QUESTION_CHARS
from rag.settings import MAX_TOP_K

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SERVER = [sys.executable, "-m", "rag.cli", "mcp"]
QUESTION = "Who introduced GANs?"
CALL_TIMEOUT_S = 600


class Client:
    """A ClientSession driven from synchronous tests through a blocking portal."""

    def __init__(self, portal, session: ClientSession, log: Path, stray: list):
        self.portal, self.session, self.log, self.stray = portal, session, log, stray

    def list_tools(self):
        return self.portal.call(self.session.list_tools)

    def call(self, name: str, arguments: dict):
        return self.portal.call(
            lambda: self.session.call_tool(name, arguments, read_timeout_seconds=CALL_TIMEOUT_S)
        )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("mcp") / "corpus"
    shutil.copytree(CORPUS, dest)
    return dest


@pytest.fixture(scope="module")
def client(corpus):
    root = corpus.parent
    log = root / "mcp.log"
    stray: list = []  # anything on the server's stdout that is not a protocol message

    async def on_message(message) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    params = StdioServerParameters(
        command=SERVER[0], args=SERVER[1:], env=plumbing_env(root / "data", corpus), cwd=str(ROOT)
    )
    with open(log, "w") as errlog, start_blocking_portal() as portal:
        streams = portal.wrap_async_context_manager(stdio_client(params, errlog=errlog))
        with streams as (read, write):
            session = ClientSession(read, write, message_handler=on_message)
            with portal.wrap_async_context_manager(session):
                portal.call(session.initialize)
                yield Client(portal, session, log, stray)
    assert not stray, stray


@pytest.fixture(scope="module")
def doc_texts(corpus) -> dict[str, str]:
    files, _ = find_files([corpus])
    return {f.source: load(f).text for f in files}


def _text(result) -> str:
    assert [c.type for c in result.content] == ["text"]
    return result.content[0].text


# -- the test ------------------------------------------------------------------------------


def test_the_client_lists_search_and_ask_with_their_schemas(client):
    tools = {t.name: t for t in client.list_tools().tools}
    assert {"search", "ask"} <= set(tools)
    search, ask = tools["search"].input_schema, tools["ask"].input_schema
    assert search["required"] == ["query"] and ask["required"] == ["question"]
    assert ask["properties"]["question"]["type"] == "string"
    assert ask["properties"]["question"]["maxLength"] == MAX_QUESTION_CHARS
    for schema in (search, ask):
        top_k = schema["properties"]["top_k"]
        assert (top_k["type"], top_k["default"], top_k["minimum"], top_k["maximum"]) == (
            "integer",
            5,
            1,
            MAX_TOP_K,
        )
    assert {"answer", "abstained", "citations"} <= set(tools["ask"].output_schema["properties"])
    assert "passages" in tools["search"].output_schema["properties"]
    assert tools["ask"].description and tools["search"].description


def test_search_returns_passages_from_the_corpus(client, corpus, doc_texts):
    result = client.call("search", {"query": QUESTION, "top_k": 3})
    assert not result.is_error, _text(result)
    out = result.structured_content
    assert out["query"] == QUESTION and out["mode"] == "hybrid"
    passages = out["passages"]
    assert [p["rank"] for p in passages] == [1, 2, 3]
    for p in passages:
        assert (corpus.parent / p["source"]).is_file()
        start, end = p["span"]
        assert p["text"] and p["text"] == doc_texts[p["source"]][start:end]
        assert {"title", "section", "score"} <= set(p)
    assert "Introduced by Ian Goodfellow in 2014" in passages[0]["text"]
    text = _text(result)
    assert text.startswith(f"[1] {passages[0]['source']}")
    assert "Introduced by Ian Goodfellow in 2014" in text
    # built on first use, and said so on stderr
    assert "rag mcp: indexed the corpus: 3 files" in client.log.read_text()


def test_ask_answers_with_verbatim_citations_or_declines(client, doc_texts):
    result = client.call("ask", {"question": QUESTION})
    assert not result.is_error, _text(result)
    out = result.structured_content
    # the fields of `rag ask --json` (../shared/CONTRACTS.md)
    assert CONTRACT_FIELDS <= set(out)
    assert out["question"] == QUESTION and out["answer"].strip()
    assert out["passages"] and len(out["passages"]) == 5
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", out["answer"])}
    assert markers == {c["n"] for c in out["citations"]}
    text = _text(result)
    assert text.startswith(out["answer"].strip())
    if out["abstained"]:
        assert out["citations"] == [] and "rag declined" in text
        return
    assert out["citations"]
    for c in out["citations"]:
        start, end = c["span"]
        assert c["text"] == doc_texts[c["source"]][start:end]  # a verbatim passage
        assert c["text"] in {p["text"] for p in out["passages"]}
        assert f"[{c['n']}] {c['source']}" in text and c["text"].strip() in text


def test_bad_input_is_a_tool_error_and_the_server_goes_on(client):
    result = client.call("ask", {"question": "   "})
    assert result.is_error
    line = _text(result)
    assert line.startswith("the question is empty.") and "\n" not in line
    assert result.structured_content == {
        "error": "the question is empty",
        "hint": 'type a question, e.g. rag ask "Who introduced GANs?"',
        "exit": 2,
        "kind": "BadInput",
    }
    long = client.call("search", {"query": "why " * MAX_QUESTION_CHARS})
    assert long.is_error and "Traceback" not in _text(long)
    for bad in ({"question": QUESTION, "top_k": 0}, {"question": QUESTION, "top_k": MAX_TOP_K + 1}):
        result = client.call("ask", bad)
        assert result.is_error and "top_k" in _text(result)
    # still serving
    again = client.call("search", {"query": "diffusion models", "top_k": 1})
    assert not again.is_error and len(again.structured_content["passages"]) == 1


# -- the process --------------------------------------------------------------------------------


def _start(tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        SERVER,
        env=plumbing_env(tmp_path / "data", tmp_path / "corpus"),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_end_of_stdin_ends_the_server_cleanly(tmp_path):
    proc = _start(tmp_path)
    out, err = proc.communicate("", timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert out == "" and "Traceback" not in err


def test_sigterm_stops_the_server(tmp_path):
    proc = _start(tmp_path)
    # A request in, so the server is reading its stdin when the signal comes.
    init = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    proc.stdin.write(json.dumps(init) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert json.loads(line)["id"] == 1, line
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-3000:]
    assert "rag mcp: stopped" in err and "Traceback" not in err
