"""Text repair at the boundary, once: broken encodings and print artefacts.

Everything else stays verbatim, so a passage's text can be found in the (repaired) file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Mojibake of UTF-8 punctuation read through a Greek code page (cp1253): the three-byte curly
# quotes and dashes (E2 80 xx) collapsed into a lone "β", and the two-byte middle dot (C2 B7)
# into "Β·". The lost bytes cannot be decoded back (ftfy needs them), so the repair reads the
# shapes only punctuation takes: a contraction ("Letβs"), a pair of quotes on one line, a dash
# between two words. A β anywhere else ("β1 = 0.9", "β-VAE") is the letter and stays.
_GREEK_LETTERS = re.compile(r"[\u0370-\u03ff]")
_CONTRACTION = re.compile(r"(?<=[A-Za-z])β(?=(?:s|t|re|ll|d|ve|m)\b)")
_QUOTE_PAIR = re.compile(
    r"(?:(?<=^)|(?<=[\s(\[]))β(?=[A-Za-z])([^β\n]*?[A-Za-z.,!?])β(?=[\s.,;:!?)\]]|$)", re.M
)
_DASH = re.compile(r"(?<=[A-Za-z])β(?=[A-Za-z])")

# Classic UTF-8-read-as-cp1252 mojibake.
_CP1252_MOJIBAKE = {
    "â€™": "’",
    "â€˜": "‘",
    "â€œ": "“",
    "â€\x9d": "”",
    "â€“": "–",
    "â€”": "—",
    "â€¦": "…",
    "Â·": "·",
    "Â ": " ",
    "Ã©": "é",
    "Ã¨": "è",
    "Ã¶": "ö",
    "Ã¼": "ü",
}

# Browser print headers and footers: "11/14/24, 9:34 PM about:blank", "about:blank 1/2".
_PRINT_ARTEFACTS = [
    re.compile(
        r"^\s*\d{1,2}/\d{1,2}/\d{2,4},?\s+\d{1,2}:\d{2}(?:\s*[AP]M)?\s+\S*(?:about:blank|https?://\S+)\s*$",
        re.M,
    ),
    re.compile(r"^\s*(?:about:blank|https?://\S+)\s+\d+\s*/\s*\d+\s*$", re.M),
]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def repair_encoding(text: str) -> str:
    if "Β·" in text or "β" in text:
        # Only repair when the Greek letters are clearly stray: a real Greek text has others.
        stray = set(_GREEK_LETTERS.findall(text)) <= {"β", "Β"}
        if stray:
            text = text.replace("Β·", "·")
            text = _CONTRACTION.sub("’", text)
            text = _DASH.sub("—", text)  # before the quotes, so that one pass is final
            text = _QUOTE_PAIR.sub(r"“\1”", text)
    if "â€" in text or "Ã" in text or "Â" in text:
        for bad, good in _CP1252_MOJIBAKE.items():
            text = text.replace(bad, good)
    return text


def normalise(text: str) -> str:
    """Repair one document's text. Idempotent."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = _CONTROL.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = repair_encoding(text)
    for pattern in _PRINT_ARTEFACTS:
        text = pattern.sub("", text)
    # Trailing spaces and runs of blank lines are layout, not content.
    text = re.sub(r"[ \t]+\n", lambda m: "\n" if "\t" not in m.group(0) else m.group(0), text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


# Characters that carry meaning in code, formulas and names ("C++", "C#", "a != b", "x <= 1"):
# a run of punctuation holding one of them is kept; other punctuation is prose and folds away.
_SYMBOLS = set("+#=<>&|*/%^~@$\\")
_PUNCT_RUN = re.compile(r"[^\w\s]+")


def _fold_punct(match: re.Match) -> str:
    run = match.group(0)
    return f" {run} " if _SYMBOLS.intersection(run) else " "


def dedup_key(text: str) -> str:
    """Passages equal up to case, prose punctuation and whitespace share this key; symbols
    that change the meaning (operators, "C++" against "C#") keep passages apart."""
    folded = " ".join(_PUNCT_RUN.sub(_fold_punct, text.casefold()).split())
    return hashlib.sha1(folded.encode("utf-8")).hexdigest()


def collapse_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
