"""The Documents tab: add files to the corpus folder and index them, list what is indexed,
remove a document. Indexing always runs over the whole corpus folder, so documents keep the
same source names as `rag ingest` gives them and a removed file leaves the index too."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from rag.app import RagApp
from rag.ui import render, uploads
from rag.ui.access import PageAccess
from rag.ui.chat import user_errors


class DocumentHandlers:
    def __init__(self, app: RagApp, access: PageAccess | None = None):
        self.app = app
        self.access = access or PageAccess()

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

    def _reindex(self, progress: gr.Progress) -> str:
        progress(0, desc="Indexing…")

        def step(done: int, total: int, source: str) -> None:
            progress((done, max(total, 1)), desc=f"Indexing {source[-60:]}")

        report = self.app.ingest([self.corpus], progress=step)
        lines = [f"Index updated: {render.esc(report.summary())}."]
        lines += [f"- skipped {render.esc(p)}: {render.esc(r)}" for p, r in report.skipped]
        return "\n".join(lines)

    def controls(self, request: gr.Request):
        """(upload, add, remove choice, remove, status): shown to admins only."""
        admin = self.access.role(_name(request)) == "admin"
        shown = gr.update(visible=admin)
        note = "" if admin else "Only an admin can add or remove documents."
        return shown, shown, shown, shown, note

    def add(
        self,
        files: list[str] | None,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008 (Gradio's idiom)
    ):
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
            status = f"Added {render.esc(', '.join(stored))}.\n\n" + self._reindex(progress)
        return (status, None, *self.refresh())

    def remove(
        self,
        name: str | None,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008
    ):
        with user_errors():
            self.access.require_admin(_name(request))
            uploads.remove_file(self.corpus, name or "")
            status = f"Removed {render.esc(name)}.\n\n" + self._reindex(progress)
        return (status, *self.refresh())


def _name(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None
