"""Office, e-book, spreadsheet and notebook files → text the chunker reads like the others:
headings on lines of their own ("# ", "## "), tables as tab-separated rows, header first.

One function per format, `(raw bytes, path) → (text, title)`; `read_format` turns any failure
into a one-line SkipFile. The libraries (the "formats" extra) are imported in the functions,
so `rag --help` never loads them and a missing one skips the file, naming the extra.

Which reader, and why:
- .pptx: llama-index's PptxReader (python-pptx; no images, no LLM). Its text marks slides up
  ("Title: …", "-----", "**bold**") and tells a table as a sentence, so the slide is rendered
  here from the parts it extracted: its title as a heading, a table as rows.
- .docx: python-docx. DocxReader's docx2txt (not in the extra) flattens headings and tables.
- .epub: ebooklib, each chapter through the renderer .html files use. EpubReader (html2text)
  wraps lines at 78 columns, writes tables as "a | b", keeps link markup, reads chapters in
  manifest order and indexes the table of contents.
- .ipynb: nbformat. IPYNBReader (nbconvert's script export) drops the markdown cells, and
  with nbconvert 7.17 returns empty text: it splits on "In[n]:" markers no longer written.
- .xlsx, .csv: openpyxl, csv. The Pandas readers join cells with ", " and drop the header
  row or fold it into every row.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import warnings
import zipfile
from datetime import datetime, time
from pathlib import Path

from rag.readers import SkipFile, decode_text, html_to_text

MAX_EXPANDED_BYTES = 500 * 1024 * 1024  # what a zipped format may unpack to (zip bombs)
NEEDS_EXTRA = 'needs the "formats" extra: pip install "rag[formats]"'
_MAX_OUTPUT_CHARS = 2000  # of one notebook cell output
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # password-protected (or pre-2007) Office files
_IMPORT_LOCK = threading.Lock()


def read_format(kind: str, raw: bytes, path: Path) -> tuple[str, str]:
    """(text, title) of a file of `kind`, or SkipFile with a one-line reason."""
    reader, label, zipped = _READERS[kind]
    try:
        if zipped:
            _check_zip(raw, label, path.suffix.lower())
        with warnings.catch_warnings():  # openpyxl's "no default style" and the like
            warnings.simplefilter("ignore")
            return reader(raw, path)
    except SkipFile:
        raise
    except ImportError as exc:
        raise SkipFile(f"{NEEDS_EXTRA} ({exc.name or exc} is missing)") from None
    except Exception as exc:
        raise SkipFile(f"corrupt or not {_a(label)} ({type(exc).__name__})") from None


def _a(label: str) -> str:
    return f"{'an' if label[0] in 'AEIOU' else 'a'} {label}"


def _check_zip(raw: bytes, label: str, ext: str) -> None:
    if raw.startswith(_OLE):
        raise SkipFile(f"encrypted or pre-2007 {label}: remove the password or save it as {ext}")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise SkipFile(f"corrupt or not {_a(label)} (not a zip archive)") from None
    if expanded > MAX_EXPANDED_BYTES:
        raise SkipFile(f"{label} unpacks to more than {MAX_EXPANDED_BYTES >> 20} MB")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _tsv(rows: list[list[str]]) -> str:
    """Rows as the chunker reads a table (as HTML tables are rendered): one line a row, cells
    tab-separated, header first; empty rows and empty outer columns dropped."""
    rows = [cells for cells in ([_one_line(c) for c in row] for row in rows) if any(cells)]
    if not rows:
        return ""
    first = min(next(i for i, c in enumerate(r) if c) for r in rows)
    width = max(max(i for i, c in enumerate(r) if c) for r in rows) + 1 - first
    lines = []
    for row in rows:
        cells = (row[first:] + [""] * width)[:width]
        if width == 2 and not cells[1]:
            cells[1] = "-"  # "a\t" is no table line to the chunker: it would end the table
        lines.append("\t".join(cells))
    return "\n".join(lines)


def _heading(level: int, text: str) -> list[str]:
    return ["", f"{'#' * level} {text}", ""]  # on a line of its own: a heading to the chunker


def read_docx(raw: bytes, path: Path) -> tuple[str, str]:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(raw))
    lines: list[str] = []
    for block in document.iter_inner_content():  # paragraphs and tables, in document order
        if isinstance(block, Table):
            lines += ["", _tsv([[cell.text for cell in row.cells] for row in block.rows]), ""]
            continue
        text, level = _one_line(block.text), _docx_heading_level(block)
        style = (block.style.name or "") if block.style is not None else ""
        if level and text:
            lines += _heading(level, text)
        elif text:  # a list item (a List style or Word's numbering) as a bullet
            bullet = style.startswith("List") or block._p.xpath("./w:pPr/w:numPr")
            lines.append(f"- {text}" if bullet else text)
    return "\n".join(lines), document.core_properties.title or ""


def _docx_heading_level(paragraph) -> int:
    """Title → 1, Heading N → N + 1 (as an HTML page's h1 is its title), a custom style with
    an outline level likewise; 0 for body text."""
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name == "Title":
        return 1
    if match := re.fullmatch(r"[Hh]eading ([1-9])", name):
        return min(int(match.group(1)) + 1, 6)
    levels = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    for _ in range(10):  # the style chain (a custom style based on a heading style)
        if levels or style is None:
            break
        levels = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        style = style.base_style
    if levels and levels[0].isdigit() and int(levels[0]) < 9:
        return min(int(levels[0]) + 2, 6)
    return 0


def _pptx_reader_class():
    # Importing llama_index.readers.file.slides runs logging.basicConfig(level=INFO): undo
    # it, or every library's INFO lines would reach the terminal from then on.
    with _IMPORT_LOCK:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            from llama_index.readers.file.slides import PptxReader
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
    # Its failures become our skip reason (raise_on_error); its log lines would repeat it.
    logging.getLogger("llama_index.readers.file.slides").setLevel(logging.CRITICAL)
    return PptxReader


def read_pptx(raw: bytes, path: Path) -> tuple[str, str]:
    import pptx  # noqa: F401  (PptxReader would report it missing as a file it cannot open)

    reader = _pptx_reader_class()(
        extract_images=False,  # captioning would load a vision model
        context_consolidation_with_llm=False,
        num_workers=0,
        raise_on_error=True,
    )
    lines: list[str] = []
    for number, slide in enumerate(reader.load_data(path), start=1):
        meta = slide.metadata
        title = _one_line(meta.get("title") or "")
        title = title if len(title) <= 80 else ""  # a guess from the body: keep it citable
        body: list[str] = []
        for section in meta.get("text_sections") or []:
            text = (section or {}).get("content") or ""
            if _one_line(text) and _one_line(text) != title:  # the title shape is the heading
                body += [_one_line(ln) for ln in text.splitlines() if ln.strip()] + [""]
        for table in meta.get("tables") or []:
            header = [table["headers"]] if table.get("headers") else []
            body += ["", _tsv(header + list(table.get("data") or [])), ""]
        for chart in meta.get("charts") or []:
            if chart.get("description"):
                body.append(f"Chart: {_one_line(chart['description'])}")
        notes = (meta.get("notes") or "").removeprefix("[Speaker Notes]:").strip()
        if notes:
            body.append(f"Speaker notes: {_one_line(notes)}")
        if title or any(body):
            lines += _heading(2, title or f"Slide {number}") + body
    return "\n".join(lines), ""


def read_xlsx(raw: bytes, path: Path) -> tuple[str, str]:
    import openpyxl

    # data_only: a formula's value as last saved, not its text.
    book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    try:
        lines: list[str] = []
        for sheet in book.worksheets:
            table = _tsv([[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)])
            if table:
                lines += _heading(2, _one_line(sheet.title) or "Sheet") + [table]
        title = book.properties.title or ""
    finally:
        book.close()
    return "\n".join(lines), title


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def read_csv(raw: bytes, path: Path) -> tuple[str, str]:
    import csv

    text = decode_text(raw)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return _tsv(list(csv.reader(io.StringIO(text, newline=""), dialect))), ""


def read_epub(raw: bytes, path: Path) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        listed = "META-INF/encryption.xml" in archive.namelist()
        crypt = archive.read("META-INF/encryption.xml") if listed else b""
    if re.search(rb"URI=\"[^\"]+\.x?html?\"", crypt):  # chapters, not just obfuscated fonts
        raise SkipFile("DRM-protected EPUB (its chapters are encrypted)")
    import ebooklib
    from ebooklib import epub

    book = epub.read_epub(io.BytesIO(raw), options={"ignore_ncx": True})
    items = [book.get_item_with_id(idref) for idref, _linear in book.spine]  # reading order
    chapters = [i for i in items if isinstance(i, epub.EpubHtml) and i.is_chapter()] or [
        i for i in book.get_items_of_type(ebooklib.ITEM_DOCUMENT) if i.is_chapter()
    ]
    texts = [html_to_text(decode_text(c.get_content()), web_page=False)[0] for c in chapters]
    titles = book.get_metadata("DC", "title")
    return "\n\n".join(texts), str(titles[0][0]) if titles else ""


def read_ipynb(raw: bytes, path: Path) -> tuple[str, str]:
    import nbformat

    # reader.reads + convert, not nbformat.reads: that one validates and logs at ERROR.
    notebook = nbformat.convert(nbformat.reader.reads(decode_text(raw)), 4)
    parts = []
    for cell in notebook.get("cells") or []:
        source = _joined(cell.get("source"))
        if cell.get("cell_type") == "markdown":
            parts.append(_markdown_cell(source))
            continue
        parts.append(source)
        for output in cell.get("outputs") or []:
            if output.get("output_type") == "stream":
                text = _joined(output.get("text"))
            else:  # execute_result, display_data (errors are skipped)
                text = _joined((output.get("data") or {}).get("text/plain"))
            if text.strip():
                parts.append(text[:_MAX_OUTPUT_CHARS])
    return "\n\n".join(p for p in parts if p.strip()), ""


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _markdown_cell(source: str) -> str:
    """A blank line after each heading, which the chunker needs outside .md files; "# " lines
    inside a fenced code block are left alone."""
    lines, fenced = [], False
    for line in source.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        lines.append(line)
        if not fenced and re.match(r"#{1,6}\s", line):
            lines.append("")
    return "\n".join(lines)


_READERS = {  # kind: (reader, what to call a file of it in a skip reason, is a zip)
    "docx": (read_docx, "Word document", True),
    "pptx": (read_pptx, "PowerPoint file", True),
    "xlsx": (read_xlsx, "Excel workbook", True),
    "csv": (read_csv, "CSV file", False),
    "epub": (read_epub, "EPUB book", True),
    "ipynb": (read_ipynb, "Jupyter notebook", False),
}
