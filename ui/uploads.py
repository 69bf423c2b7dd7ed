"""Documents added and removed from the page: names made safe, types and sizes checked, files
written into the corpus folder and nowhere else. No Gradio here, so the rules are testable."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

from rag.app import supported_extensions
from rag.errors import BadInput

ALLOWED = supported_extensions()  # what the loaders read, so the page accepts no less
MAX_NAME = 100
MAX_FILES = 50  # per upload: a folder's worth; more is `rag ingest`'s job
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """The file name an upload is stored under: its last path component, safe characters only
    (others become `_`), no leading dots (no hidden files), an allowed extension.
    `../../x.txt` → `x.txt`, `a b?.html` → `a_b.html`; raises BadInput when nothing usable is
    left."""
    raw = str(name or "")
    # Compatibility forms folded (full-width slashes become slashes), accents dropped.
    ascii_name = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    base = re.split(r"[/\\]", ascii_name)[-1]
    base = _UNSAFE.sub("_", base)
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"_+", "_", stem).strip("._-")
    ext = ext.lower()
    shown = raw.strip()[-80:] or "(no name)"
    if "." + ext not in ALLOWED or not dot:
        raise BadInput(
            f"cannot add {shown!r}: only {', '.join(ALLOWED)} files can be indexed",
            "convert it to one of these formats",
        )
    if not stem:
        raise BadInput(
            f"cannot add {shown!r}: the file name has no usable characters", "rename the file"
        )
    stem = stem[: MAX_NAME - len(ext) - 1].rstrip("._-")
    return f"{stem}.{ext}"


def check_size(path: Path, name: str, max_mb: int) -> int:
    size = Path(path).stat().st_size
    if size > max_mb * 1024 * 1024:
        raise BadInput(
            f"{name} is {size / (1024 * 1024):.1f} MB; the upload limit is {max_mb} MB",
            "split the document or raise RAG_MAX_UPLOAD_MB",
        )
    if size == 0:
        raise BadInput(f"{name} is empty", "choose a file with some text in it")
    return size


def plan_uploads(files: list[tuple[Path, str]], max_mb: int) -> list[tuple[Path, str]]:
    """(temporary path, name the user gave) → (temporary path, safe name), every file checked
    before any is written, so a bad file in a batch leaves the corpus untouched."""
    if not files:
        raise BadInput("no file chosen", f"pick one or more {', '.join(ALLOWED)} files")
    if len(files) > MAX_FILES:
        raise BadInput(
            f"{len(files)} files at once; the page takes up to {MAX_FILES}",
            "add them in smaller batches, or run: rag ingest FOLDER",
        )
    planned, seen = [], set()
    for path, name in files:
        safe = safe_name(name)
        check_size(path, safe, max_mb)
        if safe.lower() in seen:
            raise BadInput(f"two files would both be stored as {safe}", "rename one of them")
        seen.add(safe.lower())
        planned.append((Path(path), safe))
    return planned


def store_upload(src: Path, safe: str, corpus: Path) -> Path:
    """Copy into the corpus folder under `safe` (already checked), atomically: a half-written
    file is never seen by an ingest. Replaces a document of the same name."""
    corpus = Path(corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    dest = corpus / safe
    if dest.resolve().parent != corpus.resolve() or safe != safe_name(safe):
        raise BadInput(f"refusing to write {safe!r} outside the corpus folder")
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=corpus)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def corpus_files(corpus: Path) -> list[str]:
    """Documents in the corpus folder, as paths relative to it (forward slashes), skipping
    hidden files and folders, as ingest does."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(corpus, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and Path(f).suffix.lower() in ALLOWED:
                found.append((Path(dirpath) / f).relative_to(corpus).as_posix())
    return sorted(found)


def remove_file(corpus: Path, name: str) -> Path:
    """Delete one document of the corpus folder. Only a name from `corpus_files` is accepted,
    so a crafted request cannot reach any other file."""
    if not name or name not in corpus_files(corpus):
        raise BadInput(
            f"no document named {str(name)[:80]!r} in the corpus folder",
            "refresh the list and pick one",
        )
    path = Path(corpus) / name
    path.unlink()
    return path
