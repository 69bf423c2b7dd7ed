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
from dataclasses import dataclass

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
_CODE = re.compile(
    r"^\s*(?:#\s|//|(?:for|while|if|elif|else|def|class|return|import|from|print)\b.*[:)]?$)"
    r"|^\s*[\w.\[\]]+(?:\s*,\s*[\w.\[\]]+)*\s*[+\-*/]?=\s*\S"
    r"|^\s*[\w.]+\(.*\)\s*$"
)
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_TAGS = re.compile(r"<[^>]+>")
_LABEL = re.compile(r"^\s*[A-Z][\w /()-]{0,30}:\s+\S")


@dataclass
class _Line:
    start: int
    end: int
    text: str
    code: bool = False  # a whole fenced code block, held as one line


def _lines(text: str) -> list[_Line]:
    out, pos = [], 0
    for raw in text.split("\n"):
        out.append(_Line(pos, pos + len(raw), raw))
        pos += len(raw) + 1
    return out


def _is_table_line(line: str) -> bool:
    return line.count("\t") >= 2 or (line.count("\t") == 1 and not line.endswith("\t"))


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
        and not _CODE.match(stripped)
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
    prose: list[_Line] = []

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

    def flush_prose() -> None:
        if prose:
            for start, end, kind in _pack(doc.text, prose, budget, overlap, count_tokens):
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
            prose.append(_Line(line.start, last.end, doc.text[line.start : last.end], code=True))
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
            ctx = f"{context()}\nTable columns: {' | '.join(header)}"
            i += 2
            while i < len(lines) and _PIPE_ROW.match(lines[i].text):
                row = lines[i]
                cells = _pipe_cells(row.text)
                readable = "; ".join(
                    f"{h}: {c}" if h else c for h, c in zip(header + [""] * len(cells), cells) if c
                )
                lead = len(row.text) - len(row.text.lstrip())
                passages.append(
                    passage(
                        row.start + lead,
                        row.start + len(row.text.rstrip()),
                        "table_row",
                        ctx,
                        readable,
                    )
                )
                i += 1
            continue
        if _is_table_line(line.text) and i + 1 < len(lines) and _is_table_line(lines[i + 1].text):
            flush_prose()
            header = [_clean_cell(c) for c in line.text.rstrip("\t").split("\t")]
            ctx = f"{context()}\nTable columns: {' | '.join(header)}"
            i += 1
            while i < len(lines) and _is_table_line(lines[i].text):
                row = lines[i]
                cells = [_clean_cell(c) for c in row.text.rstrip("\t").split("\t")]
                readable = "; ".join(
                    f"{h}: {c}" if h else c for h, c in zip(header + [""] * len(cells), cells) if c
                )
                stripped = row.text.rstrip()
                passages.append(
                    passage(row.start, row.start + len(stripped), "table_row", ctx, readable)
                )
                i += 1
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


def _word_windows(
    text: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int]]:
    """A sentence still over budget (a word list, minified text: no sentence ends) is cut at
    word boundaries, so no passage outgrows what the embedder reads and a prompt can hold."""
    if count_tokens(text[start:end]) <= budget:
        return [(start, end)]
    windows, first, last, used = [], None, start, 0
    for word in re.finditer(r"\S+", text[start:end]):
        cost = count_tokens(word.group(0))
        if first is not None and used + cost > budget:
            windows.append((first, last))
            first, used = None, 0
        if first is None:
            first = start + word.start()
        last, used = start + word.end(), used + cost
    if first is not None:
        windows.append((first, last))
    return windows


def _code_windows(
    text: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int, bool]]:
    windows: list[tuple[int, int, bool]] = []
    first, last, used = None, start, 0
    for m in re.finditer(r"[^\n]+", text[start:end]):
        s, e = start + m.start(), start + m.end()
        cost = count_tokens(text[s:e])
        if cost > budget:  # one huge line: cut at words
            if first is not None:
                windows.append((first, last, True))
                first, used = None, 0
            windows.extend((a, b, True) for a, b in _word_windows(text, s, e, budget, count_tokens))
            continue
        if first is not None and used + cost > budget:
            windows.append((first, last, True))
            first, used = None, 0
        if first is None:
            first = s
        last, used = e, used + cost
    if first is not None:
        windows.append((first, last, True))
    return windows


def _pack(
    text: str, lines: list[_Line], budget: int, overlap: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int, str]]:
    """Greedy packing of paragraphs (sentences, for long ones) into spans under `budget`."""
    plain_count = count_tokens
    counted: dict[str, int] = {}

    def count_tokens(piece: str) -> int:  # the packing below counts the same units again
        if piece not in counted:
            counted[piece] = plain_count(piece)
        return counted[piece]

    units: list[tuple[int, int, bool]] = []  # (start, end, is_code)
    for line in lines:
        stripped_start = line.start + len(line.text) - len(line.text.lstrip())
        end = line.start + len(line.text.rstrip())
        is_code = line.code or bool(_CODE.match(line.text))
        if line.code and count_tokens(text[stripped_start:end]) > budget:
            # A long block splits between its lines, never inside a statement's line.
            units.extend(_code_windows(text, stripped_start, end, budget, count_tokens))
            continue
        glue = units and (
            is_code  # a code block belongs to the prose that introduces it
            or _LABEL.match(line.text)  # "Strengths: …" continues the paragraph above
            or text[units[-1][1] - 1] == ":"  # a lead-in ("… consists of:") binds to what follows
        )
        if glue:
            units[-1] = (units[-1][0], end, units[-1][2] and is_code)
        elif count_tokens(text[stripped_start:end]) > budget:
            for s, e in sentence_spans(text, stripped_start, end):
                units.extend(
                    (ws, we, False) for ws, we in _word_windows(text, s, e, budget, count_tokens)
                )
        else:
            units.append((stripped_start, end, is_code))

    chunks: list[tuple[int, int, str]] = []
    current: list[tuple[int, int, bool]] = []

    def size(items) -> int:
        return sum(count_tokens(text[s:e]) for s, e, _ in items)

    for unit in units:
        if current and size(current) + count_tokens(text[unit[0] : unit[1]]) > budget:
            chunks.append(
                (current[0][0], current[-1][1], "code" if all(c for *_, c in current) else "prose")
            )
            tail = current[-1]
            carried: list[tuple[int, int, bool]] = []
            if overlap and not tail[2]:
                last_sentences = sentence_spans(text, tail[0], tail[1])[-overlap:]
                # A "Limitations: …" line closes its section: carried over, it would read as
                # the first fact about the next topic.
                # A code line (the end of an example glued to its prose) is no sentence to
                # repeat.
                carry = [
                    (s, e, False)
                    for s, e in last_sentences
                    if not _LABEL.match(text[s:e]) and not _CODE.match(text[s:e])
                ]
                # A sentence of overlap, unless it would push the next passage over budget.
                if (
                    carry
                    and size(carry) <= budget // 3
                    and size(carry) + count_tokens(text[unit[0] : unit[1]]) <= budget
                ):
                    carried = carry
            current = carried
        current.append(unit)
    if current:
        chunks.append(
            (current[0][0], current[-1][1], "code" if all(c for *_, c in current) else "prose")
        )
    return chunks
