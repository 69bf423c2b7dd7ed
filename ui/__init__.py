"""The web page: `build_ui(app)` makes the Gradio Blocks, `serve(app, host, port, auth)` runs
them (what `rag ui` does). See ui/server.py."""

from __future__ import annotations


def build_ui(app):
    from rag.ui.server import build_ui as _build

    return _build(app)


def serve(
    app, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, share=False
) -> None:
    from rag.ui.server import serve as _serve

    _serve(app, host=host, port=port, auth=auth, share=share)


__all__ = ["build_ui", "serve"]
