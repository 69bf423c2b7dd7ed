"""The records that cross stage boundaries.

Document  : one loaded, normalised file.
Passage   : a chunk of a document. `text` is a verbatim span of the normalised document
            (`start`/`end` index into it); `context` holds what helps retrieval (title, section,
            a table's header row) and is embedded with the text but never spliced into it.
Hit       : a passage returned by a search, with its score and rank.
Citation  : a passage the answer cites, numbered as in the answer's `[n]` markers.
Answer    : what `rag ask` returns; `to_json()` is the contract of `rag ask --json`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from rag.highlights import backing_spans


@dataclass
class Document:
    source: str  # path relative to the corpus root, with forward slashes
    title: str
    text: str  # normalised text
    sha256: str  # of the raw file bytes
    kind: str = "txt"  # the loader kind: txt, md, html, pdf, docx, pptx, xlsx, csv, epub, ipynb


@dataclass
class Passage:
    text: str
    context: str
    source: str
    title: str
    section: str
    kind: str  # prose, table_row, list_item, code
    start: int
    end: int
    # Text the retrieval models see: context plus a readable form of the text (a table row
    # becomes "column: value" pairs). Never shown as a quote.
    search_text: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def dedup_key(self) -> str:
        from rag.normalise import dedup_key

        return dedup_key(self.text)


@dataclass
class Hit:
    id: str
    rank: int
    score: float
    text: str
    context: str
    source: str
    title: str
    section: str
    kind: str
    start: int
    end: int
    sources: list[str] = field(default_factory=list)
    # Filled by the ranker: the passage's similarity to the question (dense cosine), used to
    # decide whether retrieval found anything relevant at all.
    relevance: float = 0.0

    def cells(self) -> list[tuple[str, str]] | None:
        """A table row as (column, value) pairs under its header (rag/chunking.py keeps the
        header in the context), the row's label first; None for anything else. Tab-separated
        and Markdown pipe rows alike."""
        if self.kind != "table_row":
            return None
        match = re.search(r"Table columns: (.+)$", self.context, re.M)
        if not match:
            return None
        header = [h.strip() for h in match.group(1).split("|")]
        row = self.text.strip()
        parts = (
            row.strip("|").split("|")
            if "\t" not in row and row.startswith("|")
            else row.split("\t")
        )
        cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in parts]
        if len(cells) < 2 or len(header) < 2:
            return None
        return list(zip(header + [""] * (len(cells) - len(header)), cells))

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "source": self.source,
            "text": self.text,
            "score": round(self.score, 4),
            "context": self.context,
            "title": self.title,
            "section": self.section,
            "sources": self.sources,
            "span": [self.start, self.end],
            "kind": self.kind,
            "relevance": round(self.relevance, 4),
        }


@dataclass
class Citation:
    n: int
    hit: Hit
    # The sentences of the answer that rest on this passage.
    supports: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "source": self.hit.source,
            "title": self.hit.title,
            "section": self.hit.section,
            "text": self.hit.text,
            "context": self.hit.context,
            "score": round(self.hit.score, 4),
            "sources": self.hit.sources,
            "span": [self.hit.start, self.hit.end],
            "supports": self.supports,
            # Where in `text` the sentences backing the supports are, for the page to mark.
            "highlights": backing_spans(self.hit.text, self.supports),
        }


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    passages: list[Hit]
    mode: str
    model: str
    timings_ms: dict[str, int]
    standalone_question: str = ""
    expansion: str = ""  # the hypothetical answer searched with the question (never shown as fact)
    raw_answer: str = ""
    checks: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "passages": [h.to_json() for h in self.passages],
            "mode": self.mode,
            "model": self.model,
            "timings_ms": self.timings_ms,
        }
        if self.standalone_question and self.standalone_question != self.question:
            out["standalone_question"] = self.standalone_question
        if self.expansion:
            out["expansion"] = self.expansion
        if self.raw_answer:
            out["raw_answer"] = self.raw_answer
        if self.checks:
            out["checks"] = self.checks
        return out


@dataclass
class IngestReport:
    files: int = 0
    passages: int = 0
    added: int = 0
    removed: int = 0
    unchanged_files: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    rebuilt: str = ""  # why a full rebuild happened, if it did

    def summary(self) -> str:
        return (
            f"{self.files} files, {self.passages} passages "
            f"({self.added} new, {self.removed} removed), "
            f"{len(self.skipped)} skipped, {self.duplicates} duplicates, {self.seconds:.1f} s"
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        return d
