"""Minimal PDFs built byte by byte, for the loader and hostile-input tests."""

from __future__ import annotations

import zlib


def make_pdf(lines: list[str], title: str | None = None, inflated_padding: int = 0) -> bytes:
    """A minimal, valid one-page PDF whose page shows `lines` (Helvetica, one line each).
    `inflated_padding`: that many spaces after the text, the stream deflated (a decompression
    bomb when large: a few hundred kilobytes that inflate to the padding's size)."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for i, line in enumerate(lines):
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj" + (" T*" if i < len(lines) - 1 else ""))
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    deflate = b""
    if inflated_padding:
        stream = zlib.compress(stream + b"\n" + b" " * inflated_padding, 9)
        deflate = b" /Filter /FlateDecode"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d%s >>\nstream\n" % (len(stream), deflate) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if title:
        objects.append(b"<< /Title (" + title.encode("latin-1") + b") >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if title:
        trailer += b" /Info %d 0 R" % len(objects)
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
