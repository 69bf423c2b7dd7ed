"""rag.loaders: finding files and turning each format into a normalised document, or into a
named skip."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from pdfs import make_pdf

from rag.chunking import chunk_document
from rag.loaders import FoundFile, SkipFile, decode_text, find_files, iter_documents, load

HTML = """<!DOCTYPE html>
<html><head><title>Model Zoo</title>
<style>body { color: red; } .style-marker { display: none; }</style>
<script>var scriptMarker = "do-not-index";</script></head>
<body>
<nav>Home | About</nav>
<h1>Model Zoo</h1>
<p>This page lists generative models and when to use them.</p>
<script>console.log("inline-script-marker")</script>
<h2>Comparison</h2>
<table>
<tr><th>Model</th><th>Speed</th><th>Quality</th></tr>
<tr><td>GAN</td><td>Fast</td><td>High</td></tr>
<tr><td>VAE</td><td>Fast</td><td>Blurry</td></tr>
</table>
<p>Diffusion is slower but <b>very</b> stable.</p>
</body></html>
"""


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def _load(path: Path):
    return load(FoundFile(path, path.name))


def _skip_reason(path: Path) -> str:
    [(found, doc, reason)] = list(iter_documents([FoundFile(path, path.name)]))
    assert doc is None
    return reason


# --- finding files -------------------------------------------------------------------------


def test_find_files_walks_folders_and_names_sources_from_the_root(tmp_path):
    docs = tmp_path / "docs"
    for rel in [
        "b.txt",
        "a.md",
        "sub/c.html",
        "sub/deeper/d.pdf",
        "notes.odt",
        ".hidden.txt",
        ".git/e.txt",
    ]:
        _write(docs / rel, "x")
    files, skipped = find_files([docs])
    assert [f.source for f in files] == [
        "docs/a.md",
        "docs/b.txt",
        "docs/sub/c.html",
        "docs/sub/deeper/d.pdf",
    ]
    assert all(f.path.is_absolute() and f.path.exists() for f in files)
    assert skipped == []  # unsupported files inside a folder are passed over quietly


def test_a_single_unsupported_file_is_skipped_with_a_reason(tmp_path):
    path = _write(tmp_path / "report.odt", "x")
    files, skipped = find_files([path])
    assert files == []
    assert skipped == [("report.odt", "unsupported file type .odt")]


def test_a_directory_symlink_loop_does_not_hang_the_walk(tmp_path):
    docs = tmp_path / "docs"
    _write(docs / "sub" / "real.txt", "Real text.")
    os.symlink("..", docs / "sub" / "up")  # docs/sub/up -> docs
    os.symlink(docs, docs / "sub" / "again")  # absolute, same loop
    os.symlink("a.txt", docs / "b.txt")  # file symlinks pointing at each other
    os.symlink("b.txt", docs / "a.txt")
    result = {}
    walker = threading.Thread(target=lambda: result.update(out=find_files([docs])), daemon=True)
    walker.start()
    walker.join(timeout=20)
    assert not walker.is_alive(), "find_files hangs on a symlink loop"
    files, skipped = result["out"]
    assert [f.source for f in files] == ["docs/sub/real.txt"]
    assert sorted(skipped) == [
        ("docs/a.txt", "broken or looping symlink"),
        ("docs/b.txt", "broken or looping symlink"),
    ]


# --- formats -------------------------------------------------------------------------------


def test_txt(tmp_path):
    path = _write(tmp_path / "field-notes.txt", "Letβs start.\r\nSecond line.\r\n")
    doc = _load(path)
    assert doc.kind == "txt"
    assert doc.title == "Field notes"
    assert doc.text == "Let’s start.\nSecond line.\n"
    assert doc.source == "field-notes.txt"
    assert len(doc.sha256) == 64


def test_markdown_title_from_first_heading(tmp_path):
    path = _write(tmp_path / "guide.md", "# Setup Guide\n\nIntro line.\n\n## Install\n\nRun it.\n")
    doc = _load(path)
    assert (doc.kind, doc.title) == ("md", "Setup Guide")
    passages = chunk_document(doc)
    assert [(p.text, p.section) for p in passages] == [("Intro line.", ""), ("Run it.", "Install")]


def test_html_drops_scripts_and_styles_marks_headings_and_tabulates_tables(tmp_path):
    doc = _load(_write(tmp_path / "page.html", HTML))
    assert (doc.kind, doc.title) == ("html", "Model Zoo")
    for marker in (
        "scriptMarker",
        "do-not-index",
        "inline-script-marker",
        "style-marker",
        "color: red",
        "Home | About",
    ):
        assert marker not in doc.text
    assert "# Model Zoo\n" in doc.text
    assert "\n## Comparison\n" in doc.text
    assert "Model\tSpeed\tQuality\nGAN\tFast\tHigh\nVAE\tFast\tBlurry\n" in doc.text
    assert "Diffusion is slower but very stable." in doc.text
    rows = [p for p in chunk_document(doc) if p.kind == "table_row"]
    assert [p.text for p in rows] == ["GAN\tFast\tHigh", "VAE\tFast\tBlurry"]
    assert all(p.context.endswith("Table columns: Model | Speed | Quality") for p in rows)
    assert all(p.section == "Comparison" for p in rows)


def test_pdf(tmp_path):
    pdf = make_pdf(
        ["Diffusion models refine noise step by step.", "They were popularised (DDPM) in 2020."],
        title="Tiny Diffusion Note",
    )
    doc = _load(_write(tmp_path / "note.pdf", pdf))
    assert doc.kind == "pdf"
    assert doc.title == "Tiny Diffusion Note"
    assert (
        doc.text
        == "Diffusion models refine noise step by step.\nThey were popularised (DDPM) in 2020.\n"
    )


def test_pdf_without_metadata_is_titled_from_its_name(tmp_path):
    doc = _load(_write(tmp_path / "flow_models.pdf", make_pdf(["Flows are invertible."])))
    assert (doc.title, doc.text) == ("Flow models", "Flows are invertible.\n")


# --- decoding ------------------------------------------------------------------------------

SAMPLE = "Café naïve façade: “quotes” and a 5 € note.\nSecond line.\n"


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("utf-8", SAMPLE),
        ("utf-8-sig", SAMPLE),
        ("cp1252", SAMPLE),
        ("utf-16", SAMPLE),  # with a BOM
        ("utf-16-le", SAMPLE),  # without one
        ("latin-1", "Café naïve façade: and plain ASCII.\nSecond line.\n"),
    ],
)
def test_text_encodings_decode(tmp_path, codec, expected):
    doc = _load(_write(tmp_path / "enc.txt", expected.encode(codec)))
    assert doc.text == expected


def test_utf16_big_endian_without_bom_decodes():
    assert decode_text(
        "Plain ASCII text in UTF-16-BE.\nSecond line.\n".encode("utf-16-be")
    ).startswith("Plain ASCII")


# --- named skips ---------------------------------------------------------------------------

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("picture.txt", PNG * 20, "binary file (not text)"),
        (
            "random.md",
            bytes(range(128, 256)) * 8 + bytes(range(1, 32)) * 8,
            "binary or undecodable file",
        ),
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b" \n\t\n", "empty file"),
        (
            "broken.pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog garbage \x00\x01\x02 >>\n",
            "corrupt PDF",
        ),
        ("truncated.pdf", make_pdf(["Half a file."])[:150], "corrupt PDF"),
        ("punctuation.txt", b"... --- !!!\n", "no text found"),
    ],
)
def test_bad_files_become_named_skips(tmp_path, name, data, reason):
    path = _write(tmp_path / name, data)
    with pytest.raises(SkipFile) as err:
        load(FoundFile(path, name))
    assert str(err.value).startswith(reason)
    assert _skip_reason(path).startswith(reason)


def test_iter_documents_keeps_going_after_a_bad_file(tmp_path):
    docs = tmp_path / "docs"
    _write(docs / "a-empty.txt", b"")
    _write(docs / "b-broken.pdf", b"%PDF-1.4 nonsense")
    _write(docs / "c-good.txt", "Good text.")
    files, _ = find_files([docs])
    got = [
        (f.source, doc.text if doc else None, reason) for f, doc, reason in iter_documents(files)
    ]
    assert got == [
        ("docs/a-empty.txt", None, "empty file"),
        ("docs/b-broken.pdf", None, "corrupt PDF (PdfStreamError)"),
        ("docs/c-good.txt", "Good text.\n", ""),
    ]


def test_a_file_that_disappears_is_a_named_skip(tmp_path):
    path = tmp_path / "gone.txt"
    assert _skip_reason(path) == "file disappeared while reading"
