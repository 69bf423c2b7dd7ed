"""The Documents tab: add files to the corpus folder and index them, list what is indexed,
remove a document. Indexing always runs over the whole corpus folder, so documents keep the
same source names as `rag ingest` gives them and a removed file leaves the index too; it runs
in the background (rag/ui/indexing.py) and the page polls its progress."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from rag.app import RagApp
from rag.ui import render, uploads
from rag.ui.access import PageAccess
from rag.ui.chat import user_errors
from rag.ui.indexing import BackgroundIndexer


class DocumentHandlers:
    def __init__(self, app: RagApp, access: PageAccess | None = None):
        self.app = app
        self.access = access or PageAccess()
        self.indexer = BackgroundIndexer(app, self.corpus)

    @property
    def corpus(self) -> Path:
        return Path(self.app.settings.corpus)

    def refresh(self):
        """(documents table, guides to search, removable files, summary)."""
        with user_errors():
            sources = self.app.sources()
        files = uploads.corpus_files(self.corpus)
        total = sum(sources.values())
        summary = (
            f"**{len(sources)}** documents indexed, **{total}** passages. "
            f"Corpus folder: {render.esc(str(self.corpus))}"
        )
        return (
            render.documents_rows(sources),
            gr.update(choices=[(n.rsplit("/", 1)[-1], n) for n in sorted(sources)]),
            gr.update(choices=files, value=None),
            summary,
        )

    def _started(self, done: str) -> tuple[str, str]:
        """(status, note): what this page did, and that the index follows in the background."""
        self.indexer.request()
        return (
            f"{done}\n\nIndexing in the background; questions are answered from the index "
            "as it was until it finishes.",
            done,
        )

    def tick(self, seen_runs: int, note: str):
        """Every second: the indexing progress, and the lists once a run has finished.
        (status, table, guides, remove choice, summary, seen runs)."""
        state = self.indexer.state
        skip = (gr.skip(),) * 4
        if state.running:
            where = (
                f" {state.done}/{state.total}: {render.esc(state.source[-60:])}"
                if state.total
                else ""
            )
            status = f"{note}\n\nIndexing{where}…" if note else f"Indexing{where}…"
            return (status, *skip, seen_runs)
        if state.runs == seen_runs:
            return (gr.skip(), *skip, seen_runs)
        if state.error:
            lines = [f"Indexing stopped: {render.esc(state.error)}"]
        else:
            lines = [f"Index updated: {render.esc(state.last)}."]
        lines += [f"- skipped {render.esc(p)}: {render.esc(r)}" for p, r in state.skipped]
        status = "\n".join(lines)
        return (f"{note}\n\n{status}" if note else status, *self.refresh(), state.runs)

    def controls(self, request: gr.Request):
        """(upload, add, remove choice, remove, status): shown to admins only."""
        admin = self.access.role(_name(request)) == "admin"
        shown = gr.update(visible=admin)
        note = "" if admin else "Only an admin can add or remove documents."
        return shown, shown, shown, shown, note

    def add(self, files: list[str] | None, request: gr.Request):
        """Check every file (name, type, size), copy them into the corpus folder, index."""
        with user_errors():
            self.access.require_admin(_name(request))
            given = [(Path(f), Path(f).name) for f in (files or [])]
            planned = uploads.plan_uploads(given, self.app.settings.max_upload_mb)
            stored = []
            for src, safe in planned:
                existed = (self.corpus / safe).exists()
                uploads.store_upload(src, safe, self.corpus)
                stored.append(f"{safe} (replaced)" if existed else safe)
            status, note = self._started(f"Added {render.esc(', '.join(stored))}.")
        return (status, None, *self.refresh(), note)

    def remove(self, name: str | None, request: gr.Request):
        with user_errors():
            self.access.require_admin(_name(request))
            uploads.remove_file(self.corpus, name or "")
            status, note = self._started(f"Removed {render.esc(name)}.")
        return (status, *self.refresh(), note)


def _name(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None
