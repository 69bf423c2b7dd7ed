"""Bytes → text for the plain formats: text (its encoding found), HTML (rendered with its
headings marked "## " and its tables as tab-separated rows) and PDF. rag/loaders.py finds and
dispatches files; rag/formats.py reads the office, e-book and notebook formats with these same
pieces, so both sit above this module and neither imports the other's caller.
"""

from __future__ import annotations

import re


class SkipFile(Exception):
    """Raised by a reader for a file it cannot use; the message is the reason shown to users."""


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


def read_pdf(raw: bytes) -> tuple[str, str]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

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
    except LimitReachedError:
        # pypdf (pinned >= 6.21) bounds what one stream may decompress to.
        raise SkipFile(
            "a PDF stream decompresses past the safe limit (a decompression bomb?)"
        ) from None
    except Exception as exc:
        raise SkipFile(f"corrupt PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages), title
