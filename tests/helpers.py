"""What several test files need alike: an indexed copy of the guides, the fields of the
`rag ask --json` contract, and a free loopback port."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rag.app import RagApp
from rag.eval.load import free_port  # the one free_port; the load harness needs it too
from rag.settings import load_settings
from rag.types import Hit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
# ../shared/CONTRACTS.md: the fields of `rag ask --json` that scripts rely on.
CONTRACT_FIELDS = {
    "question",
    "answer",
    "abstained",
    "citations",
    "passages",
    "mode",
    "model",
    "timings_ms",
}

__all__ = ["CONTRACT_FIELDS", "CORPUS", "ROOT", "free_port", "indexed_copy", "passage_hit"]


def passage_hit(
    text: str, context: str = "Guide", kind: str = "prose", n: int = 1, **fields
) -> Hit:
    """A retrieved passage as the checks see it: `text` under `context`, the n-th hit."""
    values = dict(
        id=str(n),
        rank=n,
        score=1.0,
        text=text,
        context=context,
        source=f"doc{n}.txt",
        title="Guide",
        section="",
        kind=kind,
        start=0,
        end=len(text),
        relevance=0.5,
    )
    return Hit(**(values | fields))


def indexed_copy(root: Path, dense_encoder, prepare=None) -> tuple[Path, Path]:
    """A copy of the guides under root/corpus, indexed into root/data (query expansion off).
    `prepare(app)` runs on the open app after the ingest (to add history, say); the app is
    closed before this returns. Returns (corpus, data)."""
    corpus, data = root / "corpus", root / "data"
    shutil.copytree(CORPUS, corpus)
    app = RagApp(
        load_settings(env={}, expand_query=False, data_dir=data, corpus=corpus),
        dense_encoder=dense_encoder,
    )
    try:
        app.ingest([corpus])
        if prepare is not None:
            prepare(app)
    finally:
        app.close()
    return corpus, data


def plumbing_env(data: Path, corpus: Path) -> dict:
    """The environment of a `rag` child process: no RAG_* of the caller's, this data and
    corpus folder, and the plumbing model with short answers (these tests are about where
    the work runs, not what the answer says)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(data),
        RAG_CORPUS=str(corpus),
        RAG_LLM="smollm2-135m",
        RAG_MAX_TOKENS="48",
    )
    return env
