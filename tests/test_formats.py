"""rag.formats: Word, PowerPoint, Excel, CSV, EPUB and Jupyter files, made here with the
libraries that write them, read into documents the chunker treats like HTML (headings as
sections, table rows with their header), skipped with a named reason when they cannot be read,
and answered from with citations that quote them.

One folder is ingested once for the module (real Qdrant Edge, the real embedder); the answers
come from the default model (marked slow), as the other tests of answer quality do.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag import formats
from rag.app import RagApp
from rag.chunking import chunk_document
from rag.loaders import FoundFile, SkipFile, find_files, iter_documents, load
from rag.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


# --- making the files ------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Vellmar Orchard Handbook"
    document.add_heading("Vellmar Orchard Handbook", 0)
    document.add_paragraph("The orchard at Vellmar was planted by the Quist family in 1987.")
    document.add_heading("Pruning", 1)
    document.add_paragraph(
        "The Vellmar orchard prunes its pear trees in the last week of February."
    )
    document.add_heading("Pests", 1)
    para = document.add_paragraph("Codling moth traps are hung in the trees ")
    para.add_run("in early May").bold = True
    para.add_run(".")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [["Tree", "Planted", "Yield"], ["Pear", "1987", "40 kg"], ["Apple", "1992", "55 kg"]]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Check the traps weekly.", style="List Bullet")
    document.save(path)
    return path


def make_pptx(path: Path) -> Path:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Tessaly Freight quarterly review"
    body = slide.placeholders[1].text_frame
    body.text = "Revenue at Tessaly Freight grew by 12 percent in the third quarter."
    body.add_paragraph().text = "The new depot in Tromsø opened in July."
    slide.notes_slide.notes_text_frame.text = "Thank the depot team."
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Headcount"
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Office", "Staff"], ["Tromsø", "14"], ["Bergen", "9"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    deck.save(path)
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Fasteners"
    for row in [
        ["Item", "In stock", "Unit price", "Counted"],
        ["Hex bolt M8", 1200, 0.25, datetime(2026, 3, 1)],
        ["Wing nut M6", 800, 0.1, datetime(2026, 3, 2, 14, 30)],
    ]:
        sheet.append(row)
    suppliers = book.create_sheet("Suppliers")
    for row in [["Supplier", "City"], ["Ferro Halvorsen", None], ["Stahlwerk Kiel", "Kiel"]]:
        suppliers.append(row)
    book.save(path)
    return path


LIGHTHOUSES = (
    "Lighthouse,Keeper,First lit\r\n"
    "Skerrow Point,Agnes Moray,1871\r\n"
    '"Dunmore, East",Tom Reilly,1825\r\n'
    "Carrick Head,Ewan Baird,1902\r\n"
)


def make_epub(path: Path, encrypted: bool = False) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("kelso-harbour")
    book.set_title("A History of Kelso Harbour")
    book.set_language("en")
    one = epub.EpubHtml(title="The Harbour", file_name="harbour.xhtml", lang="en")
    one.content = (
        "<html><body><section><header><h1>The Harbour</h1></header>"
        "<p>The harbour at Kelso was dredged in 1911 so that larger steamers could dock.</p>"
        "<table><tr><th>Tide</th><th>Height</th></tr><tr><td>Spring</td><td>4.2 m</td></tr>"
        "<tr><td>Neap</td><td>2.1 m</td></tr></table></section></body></html>"
    )
    two = epub.EpubHtml(title="Boats", file_name="boats.xhtml", lang="en")
    two.content = (
        "<html><body><h2>Boats</h2><p>Forty herring boats fished from Kelso.</p></body></html>"
    )
    for chapter in (two, one):  # the manifest in the wrong order: the spine decides
        book.add_item(chapter)
    book.toc = (one, two)
    book.spine = ["nav", one, two]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(path), book)
    if encrypted:  # as DRM leaves it: the chapters listed as encrypted
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(
                "META-INF/encryption.xml",
                '<encryption><EncryptedData><CipherData><CipherReference URI="EPUB/harbour.xhtml"/>'
                "</CipherData></EncryptedData></encryption>",
            )
    return path


def make_ipynb(path: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "# Falcon-7 training notes\nThe Falcon-7 run used a learning rate of 0.003.\n"
            "```bash\n# not a heading\npython train.py\n```"
        ),
        nbformat.v4.new_code_cell(
            "losses = [2.1, 1.4, 0.9]\nprint(min(losses))",
            outputs=[nbformat.v4.new_output("stream", text="0.9\n")],
        ),
        nbformat.v4.new_markdown_cell("## Results\nThe Falcon-7 run converged after 40 epochs."),
    ]
    nbformat.write(notebook, str(path))
    return path


def _load(path: Path):
    return load(FoundFile(path, path.name))


# --- one ingest for the module -----------------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, dense_encoder):
    """Six good files and a broken .docx, ingested once; each good file's document."""
    root = tmp_path_factory.mktemp("formats")
    folder = root / "docs"
    folder.mkdir()
    make_docx(folder / "orchard-handbook.docx")
    make_pptx(folder / "tessaly-review.pptx")
    make_xlsx(folder / "inventory.xlsx")
    (folder / "lighthouses.csv").write_text(LIGHTHOUSES, encoding="utf-8", newline="")
    make_epub(folder / "kelso-harbour.epub")
    make_ipynb(folder / "training-notes.ipynb")
    good = (folder / "orchard-handbook.docx").read_bytes()
    (folder / "broken.docx").write_bytes(good[: len(good) // 2])  # cut off mid-download
    (folder / "~$chard-handbook.docx").write_bytes(b"\x0bJane Doe" + b"\x00" * 100)  # Word's lock
    settings = load_settings(env={}, expand_query=False, data_dir=root / "data", corpus=folder)
    app = RagApp(settings, dense_encoder=dense_encoder)
    try:
        report = app.ingest([folder])
        sources = app.sources()
    finally:
        app.close()
    files, _ = find_files([folder])
    docs = {f.source: doc for f, doc, _ in iter_documents(files) if doc}
    return SimpleNamespace(settings=settings, report=report, sources=sources, docs=docs)


@pytest.fixture
def open_app(indexed, dense_encoder):
    """An app over the module's index (one client at a time: each test opens its own)."""
    apps = []

    def build(llm=None):
        apps.append(RagApp(indexed.settings, dense_encoder=dense_encoder, llm=llm))
        return apps[-1]

    yield build
    for app in apps:
        app.close()


def test_the_broken_docx_is_skipped_and_named_and_the_others_are_indexed(indexed):
    report = indexed.report
    assert report.skipped == [
        ("docs/broken.docx", "corrupt or not a Word document (not a zip archive)")
    ]
    assert report.files == 6
    assert set(indexed.sources) == {
        "docs/inventory.xlsx",
        "docs/kelso-harbour.epub",
        "docs/lighthouses.csv",
        "docs/orchard-handbook.docx",
        "docs/tessaly-review.pptx",
        "docs/training-notes.ipynb",
    }
    assert all(count > 0 for count in indexed.sources.values())


QUESTIONS = [
    # (source, question, fact the answer and the cited passage hold)
    (
        "docs/orchard-handbook.docx",
        "When does the Vellmar orchard prune its pear trees?",
        "February",
    ),
    (
        "docs/tessaly-review.pptx",
        "By how much did revenue at Tessaly Freight grow in the third quarter?",
        "12 percent",
    ),
    ("docs/lighthouses.csv", "Who was the keeper of the Skerrow Point lighthouse?", "Agnes Moray"),
    ("docs/kelso-harbour.epub", "In which year was the harbour at Kelso dredged?", "1911"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "question", "fact"), QUESTIONS, ids=[q[0].rsplit(".")[-1] for q in QUESTIONS]
)
def test_a_question_is_answered_from_the_file_with_a_citation_that_quotes_it(
    indexed, open_app, default_llm, source, question, fact
):
    answer = open_app(default_llm).ask(question)
    assert not answer.abstained, (answer.answer, answer.checks)
    assert fact.lower() in answer.answer.lower(), answer.answer
    document = indexed.docs[source].text
    quoting = [c for c in answer.citations if c.hit.source == source and fact in c.hit.text]
    assert quoting, [(c.hit.source, c.hit.text) for c in answer.citations]
    assert all(c.hit.text in document for c in quoting)  # a verbatim span of the file's text


@pytest.mark.parametrize(
    ("query", "source", "fact"),
    [
        ("How many hex bolts M8 are in stock?", "docs/inventory.xlsx", "Hex bolt M8\t1200"),
        ("What learning rate did the Falcon-7 run use?", "docs/training-notes.ipynb", "0.003"),
    ],
)
def test_spreadsheet_and_notebook_passages_are_found(indexed, open_app, query, source, fact):
    hits = open_app().search(query, top_k=3, expansion="")
    found = [h for h in hits if h.source == source and fact in h.text]
    assert found, [(h.source, h.text) for h in hits]
    assert found[0].text in indexed.docs[source].text


# --- what each reader makes of its file --------------------------------------------------------


def test_docx_headings_become_the_sections_of_their_passages(indexed):
    doc = indexed.docs["docs/orchard-handbook.docx"]
    assert (doc.kind, doc.title) == ("docx", "Vellmar Orchard Handbook")
    assert "\n## Pruning\n\n" in doc.text and "\n## Pests\n\n" in doc.text
    assert "hung in the trees in early May." in doc.text  # runs joined, bold dropped
    passages = chunk_document(doc)
    [pruning] = [p for p in passages if "February" in p.text]
    assert pruning.section == "Pruning"
    assert pruning.context == "Vellmar Orchard Handbook — Pruning"
    rows = [p for p in passages if p.kind == "table_row"]
    assert [p.text for p in rows] == ["Pear\t1987\t40 kg", "Apple\t1992\t55 kg"]
    assert all(p.context.endswith("Table columns: Tree | Planted | Yield") for p in rows)
    assert "- Check the traps weekly." in doc.text
    assert all(p.text in doc.text for p in passages)


def test_csv_rows_are_kept_with_their_header(indexed):
    doc = indexed.docs["docs/lighthouses.csv"]
    assert (doc.kind, doc.title) == ("csv", "Lighthouses")
    assert doc.text.startswith("Lighthouse\tKeeper\tFirst lit\nSkerrow Point\tAgnes Moray\t1871\n")
    rows = chunk_document(doc)
    assert [p.text for p in rows] == [
        "Skerrow Point\tAgnes Moray\t1871",
        "Dunmore, East\tTom Reilly\t1825",  # a quoted comma stays in its cell
        "Carrick Head\tEwan Baird\t1902",
    ]
    assert all(p.kind == "table_row" for p in rows)
    assert all(
        p.context == "Lighthouses\nTable columns: Lighthouse | Keeper | First lit" for p in rows
    )
    assert "Keeper: Agnes Moray" in rows[0].search_text


def test_csv_with_semicolons_and_a_bom_is_read_as_a_table(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_bytes("\ufeffFruit;Price\nPear;2,50\nFig;4,10\n".encode())
    assert _load(path).text == "Fruit\tPrice\nPear\t2,50\nFig\t4,10\n"


def test_xlsx_gives_each_sheet_a_heading_and_its_rows_the_header(indexed):
    doc = indexed.docs["docs/inventory.xlsx"]
    assert (doc.kind, doc.title) == ("xlsx", "Inventory")  # not the first sheet's name
    assert doc.text == (
        "## Fasteners\n\n"
        "Item\tIn stock\tUnit price\tCounted\n"
        "Hex bolt M8\t1200\t0.25\t2026-03-01\n"
        "Wing nut M6\t800\t0.1\t2026-03-02 14:30:00\n\n"
        "## Suppliers\n\n"
        "Supplier\tCity\n"
        "Ferro Halvorsen\t-\n"  # an empty last cell of two would end the table
        "Stahlwerk Kiel\tKiel\n"
    )
    rows = chunk_document(doc)
    assert [(p.section, p.kind) for p in rows] == [("Fasteners", "table_row")] * 2 + [
        ("Suppliers", "table_row")
    ] * 2
    assert rows[2].context.endswith("Table columns: Supplier | City")


def test_pptx_slide_titles_are_headings_and_its_tables_rows(indexed):
    doc = indexed.docs["docs/tessaly-review.pptx"]
    assert (doc.kind, doc.title) == ("pptx", "Tessaly Freight quarterly review")
    assert doc.text == (
        "## Tessaly Freight quarterly review\n\n"
        "Revenue at Tessaly Freight grew by 12 percent in the third quarter.\n"
        "The new depot in Tromsø opened in July.\n\n"
        "Speaker notes: Thank the depot team.\n\n"
        "## Headcount\n\n"
        "Office\tStaff\nTromsø\t14\nBergen\t9\n"
    )
    rows = [p for p in chunk_document(doc) if p.kind == "table_row"]
    assert [(p.text, p.section) for p in rows] == [
        ("Tromsø\t14", "Headcount"),
        ("Bergen\t9", "Headcount"),
    ]


def test_epub_chapters_are_read_in_spine_order_without_the_contents_page(indexed):
    doc = indexed.docs["docs/kelso-harbour.epub"]
    assert (doc.kind, doc.title) == ("epub", "A History of Kelso Harbour")
    assert doc.text == (
        "# The Harbour\n\n"  # inside <header>: kept, as a book's headers hold headings
        "The harbour at Kelso was dredged in 1911 so that larger steamers could dock.\n\n"
        "Tide\tHeight\nSpring\t4.2 m\nNeap\t2.1 m\n\n"
        "## Boats\n\n"
        "Forty herring boats fished from Kelso.\n"
    )
    [dredged] = [p for p in chunk_document(doc) if "1911" in p.text]
    assert dredged.section == "The Harbour"


def test_ipynb_keeps_markdown_headings_code_and_outputs(indexed):
    doc = indexed.docs["docs/training-notes.ipynb"]
    assert (doc.kind, doc.title) == ("ipynb", "Falcon-7 training notes")
    assert doc.text == (
        "# Falcon-7 training notes\n\n"
        "The Falcon-7 run used a learning rate of 0.003.\n"
        "```bash\n# not a heading\npython train.py\n```\n\n"
        "losses = [2.1, 1.4, 0.9]\nprint(min(losses))\n\n"
        "0.9\n\n"
        "## Results\n\n"
        "The Falcon-7 run converged after 40 epochs.\n"
    )
    sections = {p.section for p in chunk_document(doc)}
    assert sections == {"", "Results"}


# --- named skips -------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600  # how a password-protected file starts
BAD_FILES = [
    # (name, its bytes from a folder to make files in, the skip reason it starts with)
    (
        "text.docx",
        lambda d: b"Plain text under the wrong name.\n",
        "corrupt or not a Word document (not a zip archive)",
    ),
    (
        "cut.pptx",
        lambda d: make_pptx(d / "x.pptx").read_bytes()[:5000],
        "corrupt or not a PowerPoint file (not a zip archive)",
    ),
    (
        "workbook.docx",
        lambda d: make_xlsx(d / "x.xlsx").read_bytes(),
        "corrupt or not a Word document (ValueError)",
    ),
    (
        "document.pptx",
        lambda d: make_docx(d / "x.docx").read_bytes(),
        "corrupt or not a PowerPoint file (ValueError)",
    ),
    (
        "document.xlsx",
        lambda d: make_docx(d / "x.docx").read_bytes(),
        "corrupt or not an Excel workbook",
    ),
    (
        "locked.xlsx",
        lambda d: OLE,
        "encrypted or pre-2007 Excel workbook: remove the password or save it as .xlsx",
    ),
    (
        "locked.docx",
        lambda d: OLE,
        "encrypted or pre-2007 Word document: remove the password or save it as .docx",
    ),
    (
        "hollow.epub",
        lambda d: _zip_bytes({"mimetype": b"application/epub+zip"}),
        "corrupt or not an EPUB book (KeyError)",
    ),
    ("cut.ipynb", lambda d: b'{"cells": [', "corrupt or not a Jupyter notebook (NotJSONError)"),
    ("picture.csv", lambda d: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "binary"),
    (
        "empty.ipynb",
        lambda d: b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
        "no text found",
    ),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_become_named_skips(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data(tmp_path))
    [(_, doc, got)] = list(iter_documents([FoundFile(path, name)]))
    assert doc is None and got.startswith(reason), got
    assert "\n" not in got


def test_a_drm_protected_epub_is_named(tmp_path):
    path = make_epub(tmp_path / "locked.epub", encrypted=True)
    with pytest.raises(SkipFile, match=r"^DRM-protected EPUB \(its chapters are encrypted\)$"):
        _load(path)


def test_a_zip_that_unpacks_too_far_is_skipped(tmp_path, monkeypatch):
    path = make_docx(tmp_path / "bomb.docx")
    monkeypatch.setattr(formats, "MAX_EXPANDED_BYTES", 10_000)
    with pytest.raises(SkipFile, match=r"^Word document unpacks to more than \d+ MB$"):
        _load(path)


@pytest.mark.parametrize(
    ("module", "make"),
    [
        ("docx", make_docx),
        ("pptx", make_pptx),
        ("openpyxl", make_xlsx),
        ("ebooklib", make_epub),
        ("nbformat", make_ipynb),
    ],
    ids=["docx", "pptx", "xlsx", "epub", "ipynb"],
)
def test_a_missing_format_library_names_the_extra(tmp_path, monkeypatch, module, make):
    suffix = "." + make.__name__.removeprefix("make_")
    path = make(tmp_path / f"a{suffix}")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    with pytest.raises(SkipFile) as err:
        _load(path)
    assert str(err.value) == (
        f'needs the "formats" extra: pip install "rag[formats]" ({module} is missing)'
    )


def test_office_lock_files_are_passed_over(tmp_path):
    make_docx(tmp_path / "report.docx")
    (tmp_path / "~$report.docx").write_bytes(b"\x0bJane Doe")
    files, skipped = find_files([tmp_path])
    assert [f.path.name for f in files] == ["report.docx"] and skipped == []


# --- start-up and side effects -----------------------------------------------------------------


def test_start_up_imports_no_format_library():
    code = (
        "import json, sys\n"
        "from rag.cli import build_parser\n"
        "import rag.loaders\n"
        "build_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    heavy = {"rag.formats", "docx", "pptx", "openpyxl", "ebooklib", "nbformat", "llama_index"}
    assert not {m for m in json.loads(out.stdout) if m in heavy or m.split(".")[0] in heavy}


def test_reading_a_pptx_leaves_the_root_logger_as_it_was(tmp_path):
    """llama-index's slides module runs logging.basicConfig(level=INFO) when imported."""
    path = make_pptx(tmp_path / "deck.pptx")
    code = (
        "import logging, sys\n"
        "from rag.loaders import FoundFile, load\n"
        f"doc = load(FoundFile(__import__('pathlib').Path({str(path)!r}), 'deck.pptx'))\n"
        "assert 'llama_index.readers.file.slides' in sys.modules\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), root.level, doc.title)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.split("\n")[0] == "0 30 Tessaly Freight quarterly review"
    assert out.stderr == ""
