"""Files → documents. Text, Markdown, HTML and PDF here; Word, PowerPoint, Excel, CSV, EPUB
and Jupyter files through rag/formats.py (its libraries are the "formats" extra). Found
recursively.

A file that cannot be read becomes a named skip with a reason; it never stops the run.
HTML is rendered to plain text with its headings marked "## " and its tables as tab-separated
rows, and the other formats likewise, so the chunker treats every format's structure the same.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.normalise import normalise
from rag.types import Document

SUPPORTED = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".epub": "epub",
    ".ipynb": "ipynb",
}
MAX_FILE_BYTES = 50 * 1024 * 1024


class SkipFile(Exception):
    """Raised by a reader for a file it cannot use; the message is the reason shown to users."""


@dataclass
class FoundFile:
    path: Path  # absolute
    source: str  # stable id shown to users: path relative to the ingested root's parent


def find_files(roots: list[Path]) -> tuple[list[FoundFile], list[tuple[str, str]]]:
    """All supported files under `roots`, sorted, and the ones passed over with a reason.
    Directory symlinks are not followed, so a symlink loop cannot trap the walk."""
    found: dict[Path, FoundFile] = {}
    skipped: list[tuple[str, str]] = []
    for root in roots:
        root = Path(os.path.abspath(root))
        if root.is_file():
            candidates = [root]
            base = root.parent
        else:
            base = root.parent
            candidates = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                # "~$x.docx": the lock file Office keeps beside an open document.
                candidates.extend(
                    Path(dirpath) / f for f in sorted(filenames) if not f.startswith((".", "~$"))
                )
        for path in candidates:
            source = path.relative_to(base).as_posix()
            if path.suffix.lower() not in SUPPORTED:
                if root.is_file():
                    skipped.append((source, f"unsupported file type {path.suffix or '(none)'}"))
                continue
            if path.is_symlink() and not path.exists():
                skipped.append((source, "broken or looping symlink"))
                continue
            found.setdefault(path, FoundFile(path, source))
    return sorted(found.values(), key=lambda f: f.source), skipped


def load(found: FoundFile) -> Document:
    """Read, decode, convert and normalise one file. Raises SkipFile."""
    try:
        raw = found.path.read_bytes()
    except FileNotFoundError:
        raise SkipFile("file disappeared while reading") from None
    except OSError as exc:
        raise SkipFile(f"unreadable ({exc.strerror or exc})") from None
    if not raw.strip():
        raise SkipFile("empty file")
    if len(raw) > MAX_FILE_BYTES:
        raise SkipFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    kind = SUPPORTED[found.path.suffix.lower()]
    if kind == "pdf":
        text, title = _read_pdf(raw)
    elif kind in ("txt", "md", "html"):
        text = decode_text(raw)
        title = ""
        if kind == "html":
            text, title = html_to_text(text)
    else:
        from rag.formats import read_format  # here, so only a run that meets one loads them

        text, title = read_format(kind, raw, found.path)
    text = normalise(text)
    if not re.search(r"\w", text):
        raise SkipFile("no text found")
    return Document(
        source=found.source,
        # A workbook's first heading is a sheet's name, not its title.
        title=title or _title_from(text, found.path, headings=kind != "xlsx"),
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        kind=kind,
    )


def decode_text(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise SkipFile("undecodable UTF-16 text") from None
    head = raw[:8192]
    if b"\x00" in head:
        # NULs without a BOM: UTF-16 without BOM is rare; binary is common.
        for codec in ("utf-16-le", "utf-16-be"):
            # ASCII-range UTF-16 has its zero bytes on the odd (LE) or even (BE) positions.
            zeros = head[1::2] if codec.endswith("le") else head[0::2]
            if zeros.count(0) > len(zeros) * 0.8:
                try:
                    return raw.decode(codec)
                except UnicodeDecodeError:
                    pass
        raise SkipFile("binary file (not text)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r") + sum(
        1 for ch in text if 0x80 <= ord(ch) < 0xA0
    )
    if controls > max(4, len(text) // 100):
        raise SkipFile("binary or undecodable file (not UTF-8, UTF-16 or Latin-1 text)")
    return text


def html_to_text(html: str, web_page: bool = True) -> tuple[str, str]:
    """(text, title) of an HTML page. `web_page=False` (an EPUB chapter) keeps <header>,
    <footer>, <nav> and <form>: in a book they hold text (a chapter's heading), not chrome."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    chrome = ["nav", "footer", "header", "form"] if web_page else []
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", *chrome]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for table in soup.find_all("table"):
        rows = []
        for tr in table.find_all("tr"):
            cells = [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
            if any(cells):
                rows.append("\t".join(cells))
        table.replace_with("\n\n" + "\n".join(rows) + "\n\n")
    for pre in soup.find_all("pre"):
        pre.replace_with("\n\n" + pre.get_text() + "\n\n")
    for block in soup.find_all(
        ["p", "li", "div", "section", "article", "dt", "dd", "blockquote", "br"]
    ):
        block.insert_before("\n")
        block.insert_after("\n")
    text = soup.get_text()
    lines = [
        re.sub(r"[ \t\r\f\v]+", " ", ln).strip() if "\t" not in ln else ln.strip()
        for ln in text.split("\n")
    ]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text, title


def _read_pdf(raw: bytes) -> tuple[str, str]:
    import io
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise SkipFile("encrypted PDF (needs a password)")
            except SkipFile:
                raise
            except Exception:
                raise SkipFile("encrypted PDF (needs a password)") from None
        pages = [page.extract_text() or "" for page in reader.pages]
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title)
    except SkipFile:
        raise
    except Exception as exc:
        raise SkipFile(f"corrupt PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages), title


def _title_from(text: str, path: Path, headings: bool = True) -> str:
    match = re.search(r"^#{1,6}\s+(.+)$", text, re.M) if headings else None
    if match and match.start() < 500:
        return match.group(1).strip().strip("*").strip()
    stem = re.sub(r"[-_]+", " ", path.stem).strip()
    return stem[:1].upper() + stem[1:]


def iter_documents(files: list[FoundFile]) -> Iterator[tuple[FoundFile, Document | None, str]]:
    """(file, document, "") or (file, None, reason) for each file."""
    for found in files:
        try:
            yield found, load(found), ""
        except SkipFile as exc:
            yield found, None, str(exc)
