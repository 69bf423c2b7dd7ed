"""`rag search` and `rag ingest` as a script sees them: a real process, stdout, stderr and the
exit code. Only the first test loads the embedding model; the error paths stop before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def rag(
    *args: str, data_dir: Path, timeout: float = 300, **extra_env: str
) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAG_DATA_DIR=str(data_dir))
    for name in (
        "RAG_DEBUG",
        "RAG_CORPUS",
        "RAG_MODE",
        "RAG_TOP_K",
        "RAG_QDRANT_URL",
        "RAG_LLM",
        "RAG_EXPAND_QUERY",
    ):
        env.pop(name, None)
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rag: error: ")
    return lines[0]


def test_search_json_on_a_fresh_data_dir(tmp_path):
    data = tmp_path / "data"
    proc = rag("search", "Who introduced GANs?", "--json", data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # exactly one JSON object, on one line
    out = json.loads(proc.stdout)
    assert out["query"] == "Who introduced GANs?"
    assert out["mode"] == "hybrid"
    assert "expansion" not in out  # the question alone finds a close passage: no guess needed
    passages = out["passages"]
    assert [p["rank"] for p in passages] == [1, 2, 3, 4, 5]
    top = passages[0]
    assert "Introduced by Ian Goodfellow in 2014" in top["text"]
    assert top["source"] == "corpus/types-of-generative-models.txt"
    for p in passages:
        assert {"rank", "source", "text", "score", "context", "sources", "span"} <= set(p)
        assert isinstance(p["score"], float)
        start, end = p["span"]
        assert (ROOT / p["source"]).is_file() and end > start
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)
    # the search ingested the shipped corpus by itself, into the given data dir
    assert (data / "index").is_dir()
    listed = rag("sources", "--json", data_dir=data)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {
        "corpus/choosing-a-generative-model-type.txt": 11,
        "corpus/generative-models-differences-and-connections.txt": 39,
        "corpus/types-of-generative-models.txt": 35,
    }


def test_search_without_a_usable_model_searches_with_the_question_alone(tmp_path):
    """Search needs no model: a broken one costs the expansion, not the search."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model" * 1000)
    # A question nothing answers closely, so the model would be asked for a guess.
    query = "How should I watch a deployed assistant in production?"
    proc = rag("search", query, "--json", data_dir=tmp_path / "data", RAG_LLM=str(broken))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "expansion" not in out and out["query"] == query
    assert len(out["passages"]) == 5
    note = [line for line in proc.stderr.splitlines() if line.startswith("rag: note:")]
    assert len(note) == 1 and "not a valid GGUF" in note[0] and "--no-expand" in note[0]


def test_ingest_of_a_missing_path_is_one_line_exit_2(tmp_path):
    proc = rag("ingest", "/no/such/path", data_dir=tmp_path / "data")
    line = assert_one_line_error(proc, 2)
    assert "/no/such/path" in line


@pytest.mark.parametrize("query", ["", "   "])
def test_search_for_nothing_is_one_line_exit_2(tmp_path, query):
    data = tmp_path / "data"
    line = assert_one_line_error(rag("search", query, data_dir=data), 2)
    assert "empty" in line
    assert not (data / "index").exists()  # rejected before the index was touched


@pytest.mark.parametrize(
    "args",
    [
        ["search", "Who introduced GANs?", "--bogus"],
        ["search", "Who introduced GANs?", "--mode", "fuzzy"],
        ["search", "Who introduced GANs?", "--top-k", "many"],
        ["search", "Who introduced GANs?", "--top-k", "1000000"],
        ["ingest", "--no-such-flag"],
        ["frobnicate"],
        [],
    ],
    ids=[
        "unknown-option",
        "bad-mode",
        "bad-top-k",
        "top-k-past-the-bound",
        "ingest-unknown-option",
        "unknown-command",
        "no-command",
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, args):
    data = tmp_path / "data"
    assert_one_line_error(rag(*args, data_dir=data), 2)
    assert not (data / "index").exists()  # rejected before anything was opened


def test_top_k_is_bounded_for_every_caller(make_app, corpus_copy):
    """The API, the MCP tools and llama-index pass top-k as an argument, not a setting: the app
    bounds it where the search starts, before the index is opened."""
    from rag.errors import BadInput
    from rag.settings import MAX_TOP_K

    app = make_app(corpus=corpus_copy)
    for bad in (0, MAX_TOP_K + 1, 10**9):
        with pytest.raises(BadInput, match="top-k must be between"):
            app.search("Who introduced GANs?", top_k=bad)
    assert "store" not in app.__dict__
