"""Words as the checks compare them: content words (no stop words), stemmed, so that
"databases" and "database" are one word. Where the index is at hand rag/verify.py takes the
BM25 analyser's own terms; these are the fallback and the alignment checks' words. Code-shaped
words (a path, an option, a setting) are one token each, as written (`code_tokens`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import snowballstemmer

STOP = set(
    "a an the and or but if of to in on at by for with from as is are was were be been being it "
    "its this that these those they them their there which who whom whose what when where why how "
    "than then so such also can could may might will would should do does did not no nor only own "
    "same too very just about into over under again further once both each few more most other "
    "some any all between through during before after above below up down out off has have had "
    "having i you he she we our your his her my me us one two use used uses using like based often "
    "well many much include includes including according passage passages document documents guide "
    "guides".split()
)

_ENGLISH = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball's English stemmer, the algorithm of the BM25 analyser's, so that "requires"
    and "require" or "generators" and "generator" are one word here as in retrieval."""
    return _ENGLISH.stemWord(word)


def content_words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP and len(w) > 1}


# Gradable opposites and states: word -> its opposites. A maintained lexicon (WordNet) needs
# a data download at run time. Relational pairs ("before"/"after", "first"/"last",
# "add"/"remove") are left out on purpose: a passage uses both of them about different
# things far more often than a sentence swaps one for the other.
_PAIRS = [
    (a, b)
    for line in """
    fast slow, faster slower, fastest slowest, quick slow, quicker slower, high low,
    higher lower, highest lowest, large small, larger smaller, largest smallest, big small,
    bigger smaller, more less, more fewer, most least, better worse, best worst, easy hard,
    easier harder, easiest hardest, easy difficult, simple complex, simpler complex,
    strong weak, stronger weaker, long short, longer shorter, increase decrease,
    increases decreases, increased decreased, increasing decreasing, maximum minimum,
    max min, required optional, mandatory optional, enable disable, enables disables,
    enabled disabled, true false, set unset, stable unstable, stability instability,
    sharp blurry, sharper blurrier, cheap expensive, cheaper expensive, explicit implicit,
    explicitly implicitly, synchronous asynchronous, lossless lossy, supervised unsupervised,
    interactive noninteractive, same different, maximize minimize, maximizing minimizing,
    maximise minimise, maximising minimising
    """.split(",")
    for a, b in [line.split()]
]
OPPOSITES: dict[str, set[str]] = {}
for _a, _b in _PAIRS:
    OPPOSITES.setdefault(_a, set()).add(_b)
    OPPOSITES.setdefault(_b, set()).add(_a)
_PREFIXES = ("un", "non", "in", "im")
# "in"/"im" make opposites of adjectives only ("invalid", "immutable"); elsewhere they are
# just letters ("inline", "import", "inside").
_ADJECTIVE = re.compile(r"(able|ible|ive|ent|ant|ect|ete|id|ure|ular|ate|ural)$")


def opposite_forms(word: str) -> set[str]:
    """The words that say the opposite of `word`: its listed opposites and its prefixed or
    unprefixed form ("stable" / "unstable", "valid" / "invalid")."""
    out = set(OPPOSITES.get(word, ()))
    for p in _PREFIXES:
        negative = word.startswith(p)
        base = word[len(p) :] if negative else word
        if len(base) < 4 or base in STOP or base == "less":
            continue
        if p in ("in", "im") and not _ADJECTIVE.search(base):
            continue
        out.add(base if negative else p + word)
    return out


def acronyms(text: str) -> dict[str, str]:
    """The acronyms a text uses, by their letters, as it writes them ("GAN" of "GANs",
    "PAM", "CRLF": "CR-LF")."""
    found = {a: a for a in re.findall(r"\b([A-Z][A-Z0-9]{1,5})s?\b", text)}
    found |= {a.replace("-", ""): a for a in re.findall(r"\b[A-Z]{1,3}-[A-Z]{1,3}\b", text)}
    return found


def contract_acronyms(sentence: str, known: dict[str, str], passages: str = "") -> str:
    """The sentence with an expansion of an acronym the passages use replaced by it:
    "Generative Adversarial Networks were introduced" is checked as "GANs were introduced",
    so a faithful spelling-out is not a claim of new words. A run the passages themselves
    write (`passages`, lower case) is their words already and stays: the title "Attention
    Is All You Need" is not "AI", nor "Long Short-Term Memory" beside its "LSTM" a
    sentence that says less."""
    if not known:
        return sentence
    words = list(re.finditer(r"[A-Za-z]+", sentence))
    out, last, i = [], 0, 0
    while i < len(words):
        for n in range(min(6, len(words) - i), 1, -1):
            run = words[i : i + n]
            initials = "".join(w.group(0)[0] for w in run).upper()
            capitalised = all(w.group(0)[0].isupper() for w in run)
            joined = all(sentence[a.end() : b.start()] in (" ", "-") for a, b in zip(run, run[1:]))
            # Lower-case runs only of three content words or more: "make an interactive
            # login" is not "MAIL".
            plain = n >= 3 and not any(w.group(0).lower() in STOP for w in run)
            # An acronym's letters come from content words at both ends: title case
            # ("Attention Is") is no spelling-out.
            ends = {run[0].group(0).lower(), run[-1].group(0).lower()}
            written = sentence[run[0].start() : run[-1].end()].lower()
            if (
                initials in known
                and joined
                and (capitalised or plain)
                and not ends & STOP
                and not (passages and re.search(r"\b" + re.escape(written), passages))
            ):
                plural = "s" if run[-1].group(0).endswith("s") else ""
                out.append(sentence[last : run[0].start()] + known[initials] + plural)
                last, i = run[-1].end(), i + n
                break
        else:
            i += 1
    return "".join(out) + sentence[last:]


# Shapes of what a how-to answer names and a model readily invents: a path ("/etc/hostname",
# "./configure"), an option ("--now", "-r"), a variable ("$HOME"), a dotted or underscored
# name ("sysctl.conf", "vm.swappiness", "max_tokens"), a colon-separated list
# ("pt:pt_BR:es"), a URL. Prose words never take these shapes; "e.g." and "i.e." are too
# short to.
_CODE_SHAPE = re.compile(
    r"(?:~?\.{0,2}/[\w.+-]*[A-Za-z][\w./+-]*"  # a path
    r"|--?[A-Za-z][\w-]*"  # an option
    r"|\$\{?[A-Za-z_]\w*\}?"  # a variable
    r"|[A-Za-z][\w+-]*(?:[._][\w+-]+)+"  # a dotted or underscored name
    r"|[\w.-]*[A-Za-z][\w.-]*(?::[\w.-]+)+"  # a colon-separated list
    r"|[a-z]+://\S+)"  # a URL
)
# A setting and its value, "NAME=VALUE": one key, since the value belongs to that name.
_ASSIGNMENT = re.compile(r"(-{0,2}\$?[A-Za-z_][\w.-]*)=([^=\s]\S*)")
_EDGES = "\"'`()[]{}<>,;:!?*"


def code_tokens(sentence: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, key) of each code-shaped token of the sentence; the key is lower-case,
    a variable's without its "$", an assignment's "name=value" without quotes."""
    for m in re.finditer(r"\S+", sentence):
        token = _bare(m.group())
        assignment = _ASSIGNMENT.fullmatch(token)
        if assignment and not token.startswith("http"):
            name, value = assignment.group(1), assignment.group(2).strip(_EDGES)
            key = f"{name}={value}" if value else name
            yield m.start(), m.end(), key.lower().lstrip("$")
            continue
        short = len(token) < 3 and not re.fullmatch(r"-[A-Za-z]", token)
        if (
            not short
            and _CODE_SHAPE.fullmatch(token)
            and not re.fullmatch(r"[A-Za-z]\.(?:[A-Za-z]\.?)+", token)
        ):
            # A variable is its name: "$SECONDS" is stated by a passage headed "SECONDS".
            yield m.start(), m.end(), token.lower().strip("${}")


def _bare(token: str) -> str:
    # Quotes, brackets and the sentence's own punctuation off both ends, however nested
    # ('"pt:pt_BR".' or "(/etc/hosts)."); a leading "./" or "." stays ("./configure").
    while True:
        bare = token.strip(_EDGES).rstrip("./")
        if bare == token or not bare:
            return bare or token
        token = bare


def code_terms(sentence: str) -> set[str]:
    """The sentence's paths, options, variables, settings and dotted or underscored names:
    each must be written in the passage that supports the sentence, as a name must."""
    return {key for _, _, key in code_tokens(sentence)}
