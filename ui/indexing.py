"""Indexing off the chat path: the Documents tab hands the corpus folder to one background run
and returns at once; questions keep being answered from the index as it stands (the ingest
holds the store only per call, rag/app.py). A change made while a run is under way is picked
up by one more run after it, so the index always ends up matching the folder. No Gradio here."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

log = logging.getLogger("rag.ui")


@dataclass
class IndexingState:
    running: bool = False
    done: int = 0
    total: int = 0
    source: str = ""
    runs: int = 0  # finished runs: the page refreshes its lists when this moves
    last: str = ""  # the last finished run's summary
    skipped: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""


class BackgroundIndexer:
    def __init__(self, app, corpus: Path):
        self.app = app
        self.corpus = Path(corpus)
        self.state = IndexingState()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._idle = threading.Event()
        self._idle.set()

    def request(self) -> None:
        """Index the corpus folder soon: now, or right after the run under way."""
        with self._lock:
            if self.state.running:  # cleared under this lock as the last run ends
                self._again = True
                return
            self.state.running, self.state.done, self.state.total = True, 0, 0
            self._idle.clear()
            self._thread = threading.Thread(target=self._run, name="rag-indexing", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """True once no run is under way or asked for (tests, shutdown)."""
        return self._idle.wait(timeout)

    def _step(self, done: int, total: int, source: str) -> None:
        self.state.done, self.state.total, self.state.source = done, total, source

    def _run(self) -> None:
        while True:
            error, summary, skipped = "", "", []
            try:
                report = self.app.ingest([self.corpus], progress=self._step)
                summary, skipped = report.summary(), list(report.skipped)
            except RagError as exc:
                error = exc.one_line()
            except Exception:  # a background thread has no caller to raise to
                log.exception("background indexing failed")
                error = "indexing failed; see the server log"
            with self._lock:
                self.state.last, self.state.skipped, self.state.error = summary, skipped, error
                if self._again:
                    self._again = False
                    self.state.done = self.state.total = 0
                    continue
                self.state.running = False
                self.state.runs += 1
                self._idle.set()
                return
