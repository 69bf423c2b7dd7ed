"""Contradictions that share every word with their passage.

The lexical check (rag/verify.py) finds where a sentence's words are in a passage; it cannot
see that "faster" is not "slower", that "not" turns a statement round, or that a table's cell
was read under the wrong column. These checks compare the sentence with the passage it rests
on and veto the support when the two disagree in a way the words themselves show:

- polarity: the sentence denies what the passage states, or states what it denies ("does
  not require large datasets" against "requires large datasets");
- opposites: the sentence uses a word where the passage uses only its opposite ("faster"
  where it says "slower", "unstable" where it says "stable");
- direction: the same comparison with the things compared the other way round;
- table cells: a value of the row claimed for a column whose cell holds another;
- substitution: what one statement of the passage says of one thing, said of another thing
  the passage names elsewhere ("associative arrays use integers" where "indexed arrays use
  integers; associative arrays use strings");

Each is a veto, never a proof: when they find nothing, the rest of the check decides. They
read the whole passage, not one window of it, so a word stated elsewhere in the passage does
not count as contradicted.

Over 300 lines, on purpose: one job, five small checks of one kind that share one reading of a
sentence (`read`: its words, stems, negations and statements); split up, each would carry a
copy of that reading or import it back from its siblings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.sentences import sentences
from rag.types import Hit
from rag.words import OPPOSITES, STOP, opposite_forms, stem

_TOKEN = re.compile(r"[a-z0-9_]+(?:'[a-z]+)?|[.,;:!?()]")
_NEGATIONS = {"not", "no", "never", "cannot", "without", "none", "neither", "nor", "nothing", "non"}
# A negation's scope ends at a clause boundary.
_BREAKS = set(
    ". , ; : ! ? ( ) but although though whereas while however yet unless except and than "
    "because so".split()
)
# Between a negation and the word it bears on: auxiliaries, articles, degree words.
_BRIDGE = set(
    "a an the be been being is are was were do does did have has had to it its any always "
    "necessarily only just very too that this these those all even also ever really much "
    "quite usually typically generally often easily directly one longer yet still of at "
    "in on by for with from as".split()
)
_SCOPE_WORDS = 3


@dataclass
class Reading:
    """A text as a run of words, with where its negations are."""

    tokens: list[str]
    stems: list[str]
    negated: set[int]  # positions inside a negation's scope
    heads: list[int]  # the word each negation bears on

    def occurrences(self, word_stem: str) -> list[int]:
        return [j for j, s in enumerate(self.stems) if s == word_stem]


def read(text: str) -> Reading:
    lower = text.lower().replace("\u2019", "'").replace("-", " ")
    tokens = _TOKEN.findall(lower)
    # "non interactive" (from "non-interactive") is one word here, as its opposite is.
    joined: list[str] = []
    for t in tokens:
        if joined and joined[-1] == "non" and t.isalpha():
            joined[-1] = "non" + t
        else:
            joined.append(t)
    tokens = joined
    negated: set[int] = set()
    heads: list[int] = []
    for i, t in enumerate(tokens):
        # "read rather than executed", "instead of copying" deny what follows as "not" does.
        contrast = i > 0 and (tokens[i - 1], t) in {("rather", "than"), ("instead", "of")}
        if t not in _NEGATIONS and not t.endswith("n't") and not contrast:
            continue
        clause = []
        for w in tokens[i + 1 :]:
            if w in _BREAKS:
                break
            clause.append(w)
        if "until" in clause:
            continue  # "does not take effect until the next line": when, not whether
        j, seen = i + 1, 0
        while j < len(tokens) and tokens[j] not in _BREAKS and seen < _SCOPE_WORDS:
            w = tokens[j]
            if w in _NEGATIONS or w.endswith("n't"):
                break
            if seen == 0 and w in _BRIDGE:
                j += 1
                continue
            if seen == 0:
                heads.append(j)
            if w not in STOP:
                seen += 1
            negated.add(j)
            j += 1
    return Reading(tokens, [stem(t) for t in tokens], negated, heads)


def _scope(r: Reading, head: int) -> list[str]:
    """The head of a negation and the content words after it, as stems."""
    out = [r.stems[head]]
    for j in range(head + 1, min(len(r.tokens), head + 4)):
        if r.tokens[j] in _BREAKS:
            break
        if r.tokens[j] not in STOP:
            out.append(r.stems[j])
    return out


def _followed(r: Reading, j: int, word: str) -> bool:
    return word in r.stems[j + 1 : j + 5]


def _polarity(claim: Reading, passage: Reading) -> str:
    for h in claim.heads:
        found = passage.occurrences(claim.stems[h])
        if found and not any(j in passage.negated for j in found):
            return f'the passage states "{claim.tokens[h]}" without the negation'
    for h in passage.heads:
        head, *rest = _scope(passage, h)
        # The claim says it when it has the head (and the word after it, when the negation
        # has one: "must not access the Internet" is not contradicted by "must access it
        # through a gateway").
        said = [
            j
            for j in claim.occurrences(head)
            if j not in claim.negated and (not rest or _followed(claim, j, rest[0]))
        ]
        stated = [
            j
            for j in passage.occurrences(head)
            if j not in passage.negated and (not rest or _followed(passage, j, rest[0]))
        ]
        if said and not stated:
            return f'the passage negates "{passage.tokens[h]}"'
    return ""


def _opposites(claim: Reading, passage: Reading) -> str:
    present = set(passage.tokens)
    stated = {t for j, t in enumerate(passage.tokens) if j not in passage.negated}
    for j, t in enumerate(claim.tokens):
        if j in claim.negated or t in present or not t.isalpha():
            continue
        other = opposite_forms(t) & stated
        if other:
            return f'the passage says "{sorted(other)[0]}", not "{t}"'
    return ""


def _comparisons(r: Reading) -> list[tuple[str, set[str], set[str]]]:
    """(comparative word, what it is compared with, the words before it in its clause)."""
    out = []
    for i, t in enumerate(r.tokens):
        if t != "than" or i == 0:
            continue
        comp = next(
            (
                w
                for w in (r.tokens[k] for k in range(i - 1, max(-1, i - 5), -1))
                if w in OPPOSITES or (w.endswith("er") and w not in STOP | _NEGATIONS)
            ),
            "",
        )
        if not comp:
            continue
        obj: set[str] = set()
        for k in range(i + 1, min(len(r.tokens), i + 6)):
            if r.tokens[k] in _BREAKS:
                break
            if r.tokens[k] not in STOP:
                obj.add(r.stems[k])
        start = max([k for k in range(i) if r.tokens[k] in {".", ";", ":", "!", "?"}] or [-1])
        before = {r.stems[k] for k in range(start + 1, i) if r.tokens[k] not in STOP}
        if obj:
            out.append((comp, obj, before))
    return out


def _direction(claim: Reading, passage: Reading) -> str:
    for comp, obj, before in _comparisons(claim):
        for p_comp, p_obj, _ in _comparisons(passage):
            if p_comp == comp and not (obj & p_obj) and (p_obj & before):
                return f'the passage compares the other way round ("{comp} than")'
    return ""


# Where one statement of a sentence ends and the next begins, for binding words to their
# statement: "indexed arrays use integers; associative arrays use strings" binds "integers"
# to "indexed". A comma ends one only before a conjunction.
_ENDS = {".", ";", ":", "!", "?", "while", "whereas", "but", "however"}
_JOINS = {"and", "or", "but", "while", "whereas", "which", "so"}
# "and"/"or" before a new subject ("… in the background and the shell does not wait") joins
# two statements; before a bare word ("GPT and BERT") it joins two things.
_SUBJECTS = {"the", "it", "they", "this", "these", "that", "its", "their", "a", "an"}


def _statements(r: Reading) -> list[list[int]]:
    """The positions of the content words of each statement of the text, in order."""
    out, current = [], []
    for j, t in enumerate(r.tokens):
        after = r.tokens[j + 1] if j + 1 < len(r.tokens) else ""
        boundary = (
            t in _ENDS
            or (t == "," and after in _JOINS)
            or (t in ("and", "or") and after in _SUBJECTS)
        )
        if boundary:
            if current:
                out.append(current)
            current = []
        elif t.isalnum() or "_" in t:
            if t not in STOP and len(t) > 1:
                current.append(j)
    if current:
        out.append(current)
    return out


def _substitution(claim: Reading, passage: Reading, asked: set[str] = frozenset()) -> str:
    """The passage's statement that says what the sentence says, but of another thing: where
    that statement has one word right beside a neighbour, the sentence has another, and the
    passage puts the sentence's word right beside that same neighbour in a different
    statement ("Bash ignores SIGQUIT" and "it ignores SIGTERM": "Bash ignores SIGTERM" in all
    cases is a swap; so is "associative arrays use integers" where "indexed arrays use
    integers; associative arrays use strings")."""
    parts = _statements(passage)
    stems = [{passage.stems[j] for j in p} for p in parts]
    for st in _statements(claim):
        have = {claim.stems[j] for j in st}
        if len(have) < 3:
            continue
        overlaps = [len(have & p) for p in stems]
        top = max(overlaps, default=0)
        if top < 2 or top < len(have) / 2:
            continue
        best = [i for i, n in enumerate(overlaps) if n == top]
        reasons = [_swapped(claim, st, passage, parts, i, asked) for i in best]
        if all(reasons):
            return reasons[0]
    return ""


def _pairs(r: Reading, positions: list[int], side: int) -> set[tuple[str, str]]:
    """(word, its neighbour on `side`) for the content words that stand right beside each
    other: "making these models" pairs nothing, "indexed arrays" pairs the two."""
    at = set(positions)
    return {(r.stems[j], r.stems[j + side]) for j in positions if j + side in at}


def _swapped(claim: Reading, st: list[int], passage: Reading, parts, b: int, asked) -> str:
    held = {passage.stems[j] for j in parts[b]}
    said = {claim.stems[j] for j in st}
    for side in (-1, 1):
        elsewhere = set().union(*(_pairs(passage, q, side) for i, q in enumerate(parts) if i != b))
        here = _pairs(passage, parts[b], side)
        for w, n in _pairs(claim, st, side):
            # A phrase echoed from the question ("shell functions") names what was asked; it
            # is no claim about it.
            if w in held or {w, n} <= asked or n not in held or (w, n) not in elsewhere:
                continue
            other = [x for x, y in here if y == n and x not in said]
            if other:
                return f'the passage says this of "{other[0]}", not "{w}"'
    return ""


def _cells(claim_text: str, hit: Hit) -> str:
    """A value of the row stated for a column whose cell does not hold it."""
    cells = hit.cells()
    if not cells:
        return ""
    said = {stem(w) for w in re.findall(r"[a-z0-9]+", claim_text.lower()) if w not in STOP}
    label = {stem(w) for w in re.findall(r"[a-z0-9]+", cells[0][1].lower())}
    columns = []
    for column, value in cells[1:]:
        name = {stem(w) for w in re.findall(r"[a-z0-9]+", column.lower()) if w not in STOP}
        words = {stem(w) for w in re.findall(r"[a-z0-9]+", value.lower()) if w not in STOP}
        columns.append((name, words))
    # A column is named by its header's words; a header shared by two columns ("port" after
    # each service name) names neither.
    unique = [name for name, _ in columns]
    named = [
        i
        for i, (name, _) in enumerate(columns)
        if name and name <= said and unique.count(name) == 1
    ]
    if not named:
        return ""
    everything = set().union(*(words for _, words in columns))
    names = set().union(*(name for name, _ in columns))
    claimed = (said & everything) - names - label
    held = set().union(*(columns[i][1] for i in named))
    wrong = sorted(claimed - held)
    if wrong:
        return f'the row\'s cell for that column does not hold "{wrong[0]}"'
    return ""


def _bearing(text: str, keys: set[str]) -> str:
    """The sentences of the text that hold every one of the claim's names and numbers, or
    the whole text when none does: "127" is bound to the sentence that says it, so a claim
    pairing it with the condition of the next sentence is read against its own."""
    if not keys:
        return text
    held = [
        s
        for s in sentences(text, wrapped=True)
        if all(re.search(r"(?<![a-z0-9])" + re.escape(k), s.lower()) for k in keys)
    ]
    return "\n".join(held) or text


def conflict(
    sentence: str,
    hits: list[Hit],
    keys: set[str] | frozenset = frozenset(),
    question: str = "",
) -> str:
    """Why the passages contradict the sentence, or "" when these checks see no conflict.
    `keys`: the sentence's names and numbers (rag/verify.py key_terms); `question`: what was
    asked, whose words the sentence may echo wherever it likes."""
    claim = read(sentence)
    text = "\n".join(f"{h.context}\n{h.text}" if h.kind != "table_row" else h.text for h in hits)
    passage = read(_bearing(text, keys))
    for check in (_polarity, _opposites, _direction):
        reason = check(claim, passage)
        if reason:
            return reason
    # A substitution is read against the whole passage: the statement it copies may be one
    # that does not hold the sentence's names.
    asked = set(read(question).stems) if question else set()
    reason = _substitution(claim, read(text), asked)
    if reason:
        return reason
    if len(hits) == 1:
        return _cells(sentence, hits[0])
    return ""
