"""Files → documents. Text, Markdown, HTML and PDF here; Word, PowerPoint, Excel, CSV, EPUB
and Jupyter files through rag/formats.py (its libraries are the "formats" extra). Found
recursively.

A file that cannot be read becomes a named skip with a reason; it never stops the run.
The bytes-to-text readers are rag/readers.py's (text, HTML, PDF) and rag/formats.py's; both
render headings as "## " lines and tables as tab-separated rows, so the chunker treats every
format's structure the same.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.normalise import normalise
from rag.readers import SkipFile, decode_text, html_to_text, read_pdf
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
        real_root = root.resolve()
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
            if path != root and not path.resolve().is_relative_to(real_root):
                # A link in a shared folder must not pull in /etc/passwd or another
                # user's files: only a file named on the command line may live elsewhere.
                skipped.append((source, "symlink to a file outside the folder (not followed)"))
                continue
            found.setdefault(path, FoundFile(path, source))
    return sorted(found.values(), key=lambda f: f.source), skipped


def load(found: FoundFile) -> Document:
    """Read, decode, convert and normalise one file. Raises SkipFile."""
    too_big = SkipFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        # The size is checked before reading, and the read stops past the limit (the file may
        # grow in between): an oversized file never sits whole in memory.
        if found.path.stat().st_size > MAX_FILE_BYTES:
            raise too_big
        with found.path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SkipFile("file disappeared while reading") from None
    except OSError as exc:
        raise SkipFile(f"unreadable ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise too_big
    if not raw.strip():
        raise SkipFile("empty file")
    kind = SUPPORTED[found.path.suffix.lower()]
    if kind == "pdf":
        text, title = read_pdf(raw)
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
