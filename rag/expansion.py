"""question → a hypothetical answer, written by the local LLM from its own knowledge and used
only to search (HyDE: Gao et al., 2022). It is never shown as an answer and never cited, so a
wrong guess costs nothing but a worse ranking: its words and meaning join the question's in
both halves of hybrid search, which bridges questions that share no word with the passage that
answers them ("watch a deployed assistant" → "Track usage patterns, feedback, and model
behavior"). Guesses are cached by model and question, so a question asked again, or an eval
run again, does not wait for the model."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import time
from pathlib import Path

# Deliberately not the answering prompt: told to use only passages, with none given, the model
# declines or borrows from the prompt's own example (measured on eval/gold.jsonl: hit@5 0.965
# with the answering prompt, 1.0 with this one).
EXPANSION_PROMPT = (
    "Answer in one or two short sentences, in plain words, as a reference guide would. "
    "Do not hedge."
)
MAX_TOKENS = 48
MAX_CHARS = 400


def hypothetical_answer(llm, question: str) -> str:
    text = llm.complete_aside(
        [{"role": "system", "content": EXPANSION_PROMPT}, {"role": "user", "content": question}],
        max_tokens=MAX_TOKENS,
    )
    return clean(text)


def clean(text: str) -> str:
    text = re.sub(r"\s*\[\d+\]", "", text)  # a stray citation marker is no evidence of anything
    return " ".join(text.split())[:MAX_CHARS]


def cache_key(model_name: str, model_path: Path, question: str) -> str:
    """The model that writes the guess, by name, size and mtime, so a replaced .gguf is not
    taken for the old one; and the prompt, so changing it starts afresh."""
    stamp: list = [model_name]
    with contextlib.suppress(OSError):
        st = Path(model_path).stat()
        stamp += [st.st_size, st.st_mtime_ns]
    blob = json.dumps([stamp, EXPANSION_PROMPT, MAX_TOKENS, question], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ExpansionCache:
    """SQLite under RAG_DATA_DIR. A cache only: any error reading or writing it (locked,
    damaged, read-only disk) makes it a miss, never a failed question."""

    def __init__(self, path: Path):
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per call: the UI calls from several threads, and the CLI
        # and the UI may share the folder.
        db = sqlite3.connect(str(self.path), timeout=2)
        db.execute(
            "CREATE TABLE IF NOT EXISTS expansions "
            "(key TEXT PRIMARY KEY, text TEXT NOT NULL, created_at REAL)"
        )
        return db

    def get(self, key: str) -> str | None:
        try:
            with contextlib.closing(self._connect()) as db:
                row = db.execute("SELECT text FROM expansions WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def put(self, key: str, text: str) -> None:
        with contextlib.suppress(sqlite3.Error, OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(self._connect()) as db, db:
                db.execute(
                    "INSERT OR REPLACE INTO expansions VALUES (?, ?, ?)", (key, text, time.time())
                )
