"""Documents → passages that follow the document's structure.

- A table row (tab-separated, or a Markdown pipe table) is a passage of its own; its table's
  header row goes into the context.
- A run of one-line, one-sentence items (an FAQ of bare answers, a bullet list) gives one
  passage per item, searched with its section heading. Numbered items are steps of one
  procedure and stay together, packed like prose.
- A fenced code block is one unit, kept with the prose that introduces it.
- Prose is packed paragraph by paragraph under a token budget, long paragraphs split on
  sentence boundaries, with a sentence of overlap between neighbours.

Every passage's `text` is `document.text[start:end]`, verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.packing import CODE_LINE, Line, pack
from rag.sentences import sentence_spans
from rag.settings import DEFAULT_EMBED_MODEL
from rag.tokens import token_counter
from rag.types import Document, Passage

CHUNKER_VERSION = 11  # bump when the output of this module changes: it forces a rebuild
# In tokens of the embedding model (MiniLM's WordPiece; it reads 256 at most, context
# included); 120 had the best mean MRR of 120, 140 and 170 on the three dev splits.
DEFAULT_BUDGET = 120

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+\S")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_TAGS = re.compile(r"<[^>]+>")


def _lines(text: str) -> list[Line]:
    out, pos = [], 0
    for raw in text.split("\n"):
        out.append(Line(pos, pos + len(raw), raw))
        pos += len(raw) + 1
    return out


def _is_table_line(line: str) -> bool:
    return line.count("\t") >= 2 or (line.count("\t") == 1 and not line.endswith("\t"))


def _tab_cells(line: str) -> list[str]:
    return [_clean_cell(c) for c in line.rstrip("\t").split("\t")]


def _pipe_cells(line: str) -> list[str]:
    return [_clean_cell(c) for c in line.strip().strip("|").split("|")]


def _is_list_item(line: str) -> bool:
    stripped = line.strip()
    if _NUMBERED.match(stripped):
        return False  # a step: its neighbours are the rest of the procedure
    if _BULLET.match(stripped):
        return True
    return (
        0 < len(stripped) <= 200
        and stripped[-1] in ".!?"
        and len(sentence_spans(stripped)) == 1
        and not CODE_LINE.match(stripped)
    )


def _clean_cell(cell: str) -> str:
    return re.sub(r"\s+", " ", _TAGS.sub(" ", cell)).strip()


def chunk_document(
    doc: Document,
    budget: int = DEFAULT_BUDGET,
    overlap: int = 1,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Passage]:
    """`budget` is in the embedding model's tokens, counted by `count_tokens` (by default the
    default embedding model's tokenizer, rag/tokens.py)."""
    count_tokens = count_tokens or token_counter(DEFAULT_EMBED_MODEL)
    lines = _lines(doc.text)
    passages: list[Passage] = []
    section = ""
    prose: list[Line] = []

    def context() -> str:
        return f"{doc.title} — {section}" if section and section != doc.title else doc.title

    # `search_ctx`: what is embedded with the text when it differs from the context shown.
    # A one-line list item is searched under its own heading only: the document's title is
    # not about it and drowns one line (an FAQ answer with no heading is searched alone).
    def passage(
        start: int, end: int, kind: str, ctx: str, search: str = "", search_ctx: str | None = None
    ) -> Passage:
        text = doc.text[start:end]
        lead = ctx if search_ctx is None else search_ctx
        return Passage(
            text=text,
            context=ctx,
            source=doc.source,
            title=doc.title,
            section=section,
            kind=kind,
            start=start,
            end=end,
            search_text=f"{lead}\n{search or text}" if lead else (search or text),
        )

    def table(header: list[str], rows: list[Line], cells_of, strip_lead: bool) -> None:
        """One passage per row, searched as "column: value" pairs under the header."""
        ctx = f"{context()}\nTable columns: {' | '.join(header)}"
        for row in rows:
            cells = cells_of(row.text)
            readable = "; ".join(
                f"{h}: {c}" if h else c for h, c in zip(header + [""] * len(cells), cells) if c
            )
            lead = len(row.text) - len(row.text.lstrip()) if strip_lead else 0
            end = row.start + len(row.text.rstrip())
            passages.append(passage(row.start + lead, end, "table_row", ctx, readable))

    def flush_prose() -> None:
        if prose:
            for start, end, kind in pack(doc.text, prose, budget, overlap, count_tokens):
                passages.append(passage(start, end, kind, context()))
            prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line.text)
        next_blank = i + 1 >= len(lines) or not lines[i + 1].text.strip()
        if heading and (doc.kind in ("md", "html") or next_blank):
            flush_prose()
            name = heading.group(2).strip().strip("*").strip()
            section = "" if name == doc.title else name
            i += 1
            continue
        if _FENCE.match(line.text):
            # The block up to its closing fence (or the end) is one line of code.
            fence = _FENCE.match(line.text).group(1)
            close = i + 1
            while close < len(lines) and not lines[close].text.strip().startswith(fence):
                close += 1
            last = lines[min(close, len(lines) - 1)]
            prose.append(Line(line.start, last.end, doc.text[line.start : last.end], code=True))
            i = close + 1
            continue
        if (
            _PIPE_ROW.match(line.text)
            and i + 1 < len(lines)
            and _PIPE_RULE.match(lines[i + 1].text)
            and "|" in lines[i + 1].text
        ):
            flush_prose()
            header = _pipe_cells(line.text)
            i += 2
            rows = []
            while i < len(lines) and _PIPE_ROW.match(lines[i].text):
                rows.append(lines[i])
                i += 1
            table(header, rows, _pipe_cells, strip_lead=True)
            continue
        if _is_table_line(line.text) and i + 1 < len(lines) and _is_table_line(lines[i + 1].text):
            flush_prose()
            header = _tab_cells(line.text)
            i += 1
            rows = []
            while i < len(lines) and _is_table_line(lines[i].text):
                rows.append(lines[i])
                i += 1
            table(header, rows, _tab_cells, strip_lead=False)
            continue
        # A run of at least four one-sentence lines is a list: one passage per item.
        run = i
        while run < len(lines) and _is_list_item(lines[run].text):
            run += 1
        if run - i >= 4:
            flush_prose()
            for item in lines[i:run]:
                lead = len(item.text) - len(item.text.lstrip())
                passages.append(
                    passage(
                        item.start + lead,
                        item.start + len(item.text.rstrip()),
                        "list_item",
                        context(),
                        search_ctx=section,
                    )
                )
            i = run
            continue
        if line.text.strip():
            prose.append(line)
        i += 1
    flush_prose()
    return passages
