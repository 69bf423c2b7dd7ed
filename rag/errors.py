"""One exception family. The CLI prints `message` and `hint` on one line and exits with
`exit_code`; the UI shows them in a gr.Error. RAG_DEBUG=1 re-raises with the traceback."""

from __future__ import annotations


class RagError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else f"{text}."


class BadInput(RagError):
    """The user gave something we cannot work with (empty question, missing path, bad flag)."""

    exit_code = 2


class MissingModel(RagError):
    """Model weights are absent, incomplete or do not match their published checksum."""

    exit_code = 3


class StoreLocked(RagError):
    """The embedded Qdrant folder is held by another process."""

    exit_code = 4


class CorruptIndex(RagError):
    """The index cannot be opened or read back; `rag ingest --rebuild` recreates it."""

    exit_code = 5


class StoreUnavailable(RagError):
    """A Qdrant server was configured but cannot be reached."""

    exit_code = 6


class LLMUnavailable(RagError):
    """The LLM server named by RAG_LLM_URL cannot be reached or refused the request."""

    exit_code = 7


def error_body(exc: RagError, kind: str | None = None) -> dict:
    """An error as the JSON API sends it (rag/remote.py turns it back into the same error)."""
    return {
        "error": exc.message,
        "hint": exc.hint,
        "exit": exc.exit_code,
        "kind": kind or type(exc).__name__,
    }
