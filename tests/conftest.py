"""Every test gets its own RAG_DATA_DIR and runs offline. Models are real and loaded once per
session (the embedding model; the LLMs in their own fixtures) and shared between the apps
that tests build."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import rag  # noqa: F401  (importing rag sets the hub libraries offline)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    for name in list(os.environ):
        if name.startswith("RAG_") and name not in ("RAG_DATA_DIR",):
            monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def dense_encoder():
    from rag.embedding import DenseEncoder

    return DenseEncoder("all-MiniLM-L6-v2")


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A private copy of the shipped guides, safe to modify."""
    dest = tmp_path / "corpus"
    shutil.copytree(CORPUS, dest)
    return dest


@pytest.fixture
def make_app(tmp_path, dense_encoder):
    from rag.app import RagApp
    from rag.settings import load_settings

    apps = []

    def build(**overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        # No LLM here, so the question alone is searched; tests/test_retrieval.py covers
        # expansion with the real model.
        overrides.setdefault("expand_query", False)
        app = RagApp(load_settings(**overrides), dense_encoder=dense_encoder)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


def _load_llm(tmp_path_factory, preset: str):
    from rag.llm import LocalLLM
    from rag.weights import resolve_model

    name, path = resolve_model(preset, tmp_path_factory.mktemp("models"))
    return LocalLLM(path, name, n_ctx=4096)


@pytest.fixture(scope="session")
def small_llm(tmp_path_factory):
    """SmolLM2-135M: for the plumbing (streaming, JSON shape, budgets); useless for quality."""
    return _load_llm(tmp_path_factory, "smollm2-135m")


@pytest.fixture(scope="session")
def default_llm(tmp_path_factory):
    """The default model, for behaviour: grounded answers, refusals, injections."""
    return _load_llm(tmp_path_factory, "qwen2.5-coder-1.5b")


@pytest.fixture(scope="session")
def judge_contexts():
    """One judge context per model for the whole session (RagApp.judge_llm builds one per app)."""
    from rag.llm import LocalLLM

    contexts: dict = {}

    def judge_for(llm):
        if llm.path not in contexts:
            contexts[llm.path] = LocalLLM(llm.path, llm.name, n_ctx=2048)
        return contexts[llm.path]

    return judge_for


@pytest.fixture
def make_answer_app(tmp_path, dense_encoder, judge_contexts):
    """An app over the shipped corpus with a shared, already-loaded LLM (and judge context)."""
    from rag.app import RagApp
    from rag.settings import load_settings

    apps = []

    def build(llm, **overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        # The judge's context is loaded only for apps that turn the judge on.
        judge = judge_contexts(llm) if overrides.get("judge_citations") else None
        app = RagApp(
            load_settings(**overrides), dense_encoder=dense_encoder, llm=llm, judge_llm=judge
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


# The page's browser tests (tests/test_ui_e2e.py, tests/test_ui_accounts.py): Debian's Chromium.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    # A missing browser fails these tests, never skips them: `make test` installs it.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run make test, or apt-get install chromium"
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
