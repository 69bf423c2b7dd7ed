"""One owner (issue #16): while `rag ui` or `rag serve` holds the index, the other commands go
through its JSON API (rag/server.py, found through RAG_DATA_DIR/server.json) and print what they
print with no server running. Real processes throughout: the server, the commands, Qdrant Edge,
the embedder and the 135M model.

Two identical copies of one index: `served`, owned by a running `rag ui`, and `alone`, which
the same commands open themselves. Whatever one copy is asked, the other is asked too, so they
stay identical and their outputs can be compared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import CONTRACT_FIELDS, free_port, indexed_copy, plumbing_env

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
START_TIMEOUT_S = 300
QUESTION = "Who introduced GANs?"
# No proxy between the tests and a loopback server.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rag(
    args: list[str],
    data: Path,
    corpus: Path,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        env=plumbing_env(data, corpus),
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def same_output(served: subprocess.CompletedProcess, alone: subprocess.CompletedProcess) -> None:
    assert (served.returncode, served.stdout, served.stderr) == (
        alone.returncode,
        alone.stdout,
        alone.stderr,
    )


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stderr[-2000:]
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), proc.stderr[-2000:]
    return lines[0]


def start_server(args: list[str], data: Path, corpus: Path, log: Path) -> subprocess.Popen:
    """Start a server process and wait until its server.json is there."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", *args],
            env=plumbing_env(data, corpus),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (data / "server.json").exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the server exited with {proc.returncode}: {log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(
                f"no server.json after {START_TIMEOUT_S} s: {log.read_text()[-3000:]}"
            )
        time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def server_info(data: Path) -> dict:
    return json.loads((data / "server.json").read_text())


def call(
    data: Path, method: str, path: str, body: dict | None = None, token: str | None = "from-file"
):
    """(HTTP status, parsed body) of one API request; `token=None` sends none."""
    info = server_info(data)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {info['token'] if token == 'from-file' else token}"
    req = urllib.request.Request(
        info["url"] + path,
        method=method,
        headers=headers,
        data=None if body is None else json.dumps(body).encode(),
    )
    try:
        with OPENER.open(req, timeout=600) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def template(tmp_path_factory, dense_encoder) -> dict:
    """An index of the guides, and a folder of extra documents (one of them unreadable)."""
    root = tmp_path_factory.mktemp("serve-template")
    corpus, data = indexed_copy(root, dense_encoder)
    extra = root / "extra"
    extra.mkdir()
    (extra / "zephyrnet.txt").write_text(
        "The Zephyrnet model is a made-up generator that draws kites.\n", "utf-8"
    )
    (extra / "empty.txt").write_text("", "utf-8")
    return {"root": root, "corpus": corpus, "data": data, "extra": extra}


@pytest.fixture(scope="module")
def pair(template, tmp_path_factory):
    """`rag ui` running over one copy of the index; the other copy left to the commands."""
    root = tmp_path_factory.mktemp("serve-pair")
    served, alone = root / "served", root / "alone"
    shutil.copytree(template["data"], served)
    shutil.copytree(template["data"], alone)
    ui = start_server(
        ["ui", "--port", str(free_port()), "--model", "smollm2-135m"],
        served,
        template["corpus"],
        root / "ui.log",
    )
    yield {
        "served": served,
        "alone": alone,
        "corpus": template["corpus"],
        "extra": template["extra"],
        "ui": ui,
        "log": root / "ui.log",
    }
    code = stop(ui)
    assert code == 0, (root / "ui.log").read_text()[-3000:]
    assert not (served / "server.json").exists(), "a clean exit removes server.json"


def both(
    pair, args: list[str], **kw
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    served = rag(args, pair["served"], pair["corpus"], **kw)
    alone = rag(args, pair["alone"], pair["corpus"], **kw)
    assert pair["ui"].poll() is None, pair["log"].read_text()[-3000:]
    return served, alone


# -- the test ------------------------------------------------------------------------------


def test_with_rag_ui_running_ask_answers_in_another_process(pair):
    served, alone = both(pair, ["ask", QUESTION, "--json"])
    # The ui holds the index: a command that opened it itself would have failed (StoreLocked).
    assert served.returncode == 0, served.stderr[-3000:]
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert served.stdout.count("\n") == 1  # one JSON object, on one line
    got, ref = json.loads(served.stdout), json.loads(alone.stdout)
    assert CONTRACT_FIELDS <= set(got)
    assert got["question"] == QUESTION and got["answer"].strip() and got["mode"] == "hybrid"
    assert {"retrieve", "first_token", "total"} <= set(got["timings_ms"])
    assert got["passages"] and all(
        (pair["corpus"].parent / p["source"]).is_file() for p in got["passages"]
    )
    assert "Introduced by Ian Goodfellow in 2014" in got["passages"][0]["text"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", got["answer"])}
    assert markers == {c["n"] for c in got["citations"]}
    # the same answer structure and the same retrieval as with no server running
    assert set(got) == set(ref) and got["model"] == ref["model"]
    assert got["passages"] == ref["passages"]
    assert [set(c) for c in got["citations"]] == [set(c) for c in ref["citations"]]


def test_ask_streams_its_answer_through_the_server(pair):
    proc = rag(["ask", QUESTION], pair["served"], pair["corpus"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() and "Traceback" not in proc.stderr
    if "\nSources:\n" in proc.stdout:
        assert re.search(r"^  \[1\] corpus/\S+", proc.stdout, re.M)


# -- the same output either way ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["search", QUESTION, "--json"],
        ["search", QUESTION],
        [
            "search",
            "What are the limitations of VAEs?",
            "--mode",
            "sparse",
            "--top-k",
            "3",
            "--kind",
            "prose",
            "--json",
        ],
        ["search", "diffusion", "--source", "types-of-generative-models.txt", "--no-expand"],
        ["sources", "--json"],
        ["sources"],
    ],
    ids=["search-json", "search", "search-flags", "search-source", "sources-json", "sources"],
)
def test_search_and_sources_print_the_same_through_the_server(pair, args):
    served, alone = both(pair, args)
    assert served.returncode == 0, served.stderr[-3000:]
    same_output(served, alone)


def test_ingest_through_the_server_matches_a_local_ingest(pair):
    """A relative path is made absolute before it is sent: the same source names, the same skip."""
    served, alone = both(pair, ["ingest", pair["extra"].name, "--json"], cwd=pair["extra"].parent)
    assert served.returncode == 0, served.stderr[-3000:]
    got, ref = json.loads(served.stdout), json.loads(alone.stdout)
    assert got.pop("seconds") >= 0 and ref.pop("seconds") >= 0
    assert got == ref and got["added"] > 0
    assert got["skipped"] == [{"path": "extra/empty.txt", "reason": "empty file"}]
    assert served.stderr == alone.stderr == "skipped extra/empty.txt: empty file\n"
    # the server's index has the new document, under the name a local ingest gives it
    served, alone = both(pair, ["sources", "--json"])
    same_output(served, alone)
    assert "extra/zephyrnet.txt" in json.loads(served.stdout)
    served, alone = both(
        pair, ["search", "What does the Zephyrnet model draw?", "--mode", "sparse", "--json"]
    )
    same_output(served, alone)
    assert json.loads(served.stdout)["passages"][0]["source"] == "extra/zephyrnet.txt"


@pytest.mark.parametrize(
    "args,code",
    [
        (["ask", ""], 2),
        (["ask", "   ", "--json"], 2),
        (["search", "GANs", "--source", "no-such-guide"], 2),
        (["ingest", "/no/such/folder"], 2),
    ],
    ids=["ask-empty", "ask-blank-json", "search-unknown-source", "ingest-missing"],
)
def test_errors_are_the_same_line_and_exit_code_through_the_server(pair, args, code):
    served, alone = both(pair, args)
    one_line_error(served, code)
    same_output(served, alone)


def test_chat_goes_through_the_server(pair):
    proc = rag(["chat"], pair["served"], pair["corpus"], stdin=QUESTION + "\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("you> rag> ") and len(proc.stdout) > len("you> rag> \n")
    cid = re.search(r"rag chat --resume (\w+)$", proc.stderr.strip()).group(1)
    listed = rag(["chat", "--list"], pair["served"], pair["corpus"])
    assert listed.returncode == 0 and listed.stdout.startswith(f"{cid}  {QUESTION}")
    resumed = rag(["chat", "--resume", cid], pair["served"], pair["corpus"], stdin="")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.startswith(f"you> {QUESTION}\nrag> ")
    gone = rag(["chat", "--resume", "nosuchconversation"], pair["served"], pair["corpus"], stdin="")
    alone = rag(["chat", "--resume", "nosuchconversation"], pair["alone"], pair["corpus"], stdin="")
    one_line_error(gone, 2)
    same_output(gone, alone)


# -- the API itself --------------------------------------------------------------------------------


def test_server_json_is_private_and_names_the_ui(pair):
    path = pair["served"] / "server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = server_info(pair["served"])
    assert info["pid"] == pair["ui"].pid and info["url"].startswith("http://127.0.0.1:")
    assert len(info["token"]) >= 32
    status, health = call(pair["served"], "GET", "/v1/health")
    assert status == 200 and health["pid"] == pair["ui"].pid


@pytest.mark.parametrize("token", [None, "not-the-token", ""], ids=["none", "wrong", "empty"])
def test_a_request_without_the_token_is_refused(pair, token):
    for method, path, body in [
        ("GET", "/v1/sources", None),
        ("POST", "/v1/ask", {"question": QUESTION}),
        ("POST", "/v1/ingest", {"paths": [str(pair["extra"])], "rebuild": True}),
        ("GET", "/v1/health", None),
    ]:
        status, answer = call(pair["served"], method, path, body, token=token)
        assert status == 401, (method, path, answer)
        assert set(answer) >= {"error", "hint", "exit"} and "token" in answer["error"]
    status, sources = call(pair["served"], "GET", "/v1/sources")
    assert status == 200
    alone = rag(["sources", "--json"], pair["alone"], pair["corpus"])
    assert sources == json.loads(alone.stdout)  # the refused ingest --rebuild did nothing


def test_api_errors_carry_the_error_hint_and_exit_code(pair):
    status, body = call(pair["served"], "POST", "/v1/ask", {"question": ""})
    assert status == 400
    assert body == {
        "error": "the question is empty",
        "hint": 'type a question, e.g. rag ask "Who introduced GANs?"',
        "exit": 2,
        "kind": "BadInput",
    }
    status, body = call(pair["served"], "POST", "/v1/ingest", {"paths": ["relative/path"]})
    assert status == 400 and body["exit"] == 2 and "absolute" in body["error"]
    status, body = call(pair["served"], "GET", "/v1/nothing")
    assert status == 404 and body["exit"] == 2


def test_openai_compatible_chat_completions(pair):
    status, models = call(pair["served"], "GET", "/v1/models")
    assert status == 200 and models["data"][0]["id"] == "smollm2-135m"
    status, body = call(
        pair["served"],
        "POST",
        "/v1/chat/completions",
        {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert status == 200, body
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == body["rag"]["answer"]
    assert CONTRACT_FIELDS <= set(body["rag"]) and body["rag"]["question"] == QUESTION


def test_the_official_openai_client_talks_to_rag_serve(pair):
    """What a user of an OpenAI-speaking tool gets: the openai package itself, pointed at the
    server's /v1 with the token as its API key, plain and streamed."""
    import openai

    info = server_info(pair["served"])
    client = openai.OpenAI(base_url=info["url"] + "/v1", api_key=info["token"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["smollm2-135m"]
    reply = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}]
    )
    extra = reply.model_extra["rag"]
    assert reply.choices[0].message.content == extra["answer"]
    assert CONTRACT_FIELDS <= set(extra)
    chunks = list(
        client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    final = chunks[-1].model_extra["rag"]
    assert streamed.strip() == final["answer"].strip()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=info["url"] + "/v1", api_key="wrong", max_retries=0).models.list()


# -- the server's life: one at a time, a clean exit, a stale file ----------------------------------


def test_serve_lifecycle_and_a_stale_server_json(template, tmp_path):
    data, corpus = tmp_path / "data", template["corpus"]
    shutil.copytree(template["data"], data)
    expected = json.loads(rag(["sources", "--json"], data, corpus).stdout)
    proc = start_server(["serve"], data, corpus, tmp_path / "serve.log")
    try:
        info = server_info(data)
        assert (
            info["pid"] == proc.pid and stat.S_IMODE((data / "server.json").stat().st_mode) == 0o600
        )
        got = rag(["sources", "--json"], data, corpus)
        assert got.returncode == 0 and json.loads(got.stdout) == expected
        # one owner: a second server on the same data dir says so and leaves the first alone
        second = rag(["serve"], data, corpus, timeout=120)
        assert "already serves" in one_line_error(second, 4)
        assert server_info(data) == info and proc.poll() is None
    finally:
        code = stop(proc, signal.SIGTERM)
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not (data / "server.json").exists()

    # killed: its server.json stays behind, and the next command opens the index itself
    proc = start_server(["serve"], data, corpus, tmp_path / "serve2.log")
    stop(proc, signal.SIGKILL)
    assert (data / "server.json").exists()
    got = rag(["sources", "--json"], data, corpus)
    assert got.returncode == 0, got.stderr[-3000:]
    assert json.loads(got.stdout) == expected and got.stderr == ""
    assert not (data / "server.json").exists(), "a server.json whose process is gone is removed"

    # a live pid that does not answer (here: this test's own) is ignored, not trusted
    stale = {
        "url": f"http://127.0.0.1:{free_port()}",
        "pid": os.getpid(),
        "token": "x" * 43,
        "collection": "rag",
    }
    fd = os.open(data / "server.json", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(stale, f)
    got = rag(["sources", "--json"], data, corpus)
    assert got.returncode == 0 and json.loads(got.stdout) == expected, got.stderr[-3000:]
