"""The one sentence splitter: offsets are verbatim, lines always end a sentence, and
abbreviations, numbers and citation markers do not split one."""

from rag.sentences import sentence_spans, sentences


def test_spans_are_verbatim_offsets_without_surrounding_space():
    text = "  GANs came in 2014.  VAEs are older.\n\n- a list item\n"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "GANs came in 2014.",
        "VAEs are older.",
        "- a list item",
    ]


def test_abbreviations_numbers_and_markers_stay_inside_their_sentence():
    assert sentences("Dr. Vireo wrote it, e.g. in section 3.2.1 [1]. It is short [2].") == [
        "Dr. Vireo wrote it, e.g. in section 3.2.1 [1].",
        "It is short [2].",
    ]
    # A marker after the full stop belongs to the sentence it follows.
    assert sentences("It generates images. [1] Next, it adds noise.") == [
        "It generates images. [1]",
        "Next, it adds noise.",
    ]


def test_a_line_break_ends_a_sentence_and_a_range_is_respected():
    text = "Heading without a stop\nA sentence. Another one."
    assert sentences(text) == ["Heading without a stop", "A sentence.", "Another one."]
    start = text.index("A sentence")
    assert sentence_spans(text, start, start + len("A sentence.")) == [
        (start, start + len("A sentence."))
    ]


def test_no_boundary_inside_inline_code():
    text = "Run the script: `./install.sh` and wait. Then run `make test`."
    assert sentences(text) == ["Run the script: `./install.sh` and wait.", "Then run `make test`."]


def test_a_wrapped_document_line_continues_its_sentence():
    # A manual's HTML keeps its source lines: read as a document, a line that stops
    # mid-sentence goes on below; a list item, a table row and a finished sentence do not.
    text = (
        "When Bash is invoked as an interactive login shell, or as a\n"
        "non-interactive shell with the\n"
        "--login option, it reads /etc/profile. After that file, it looks for ~/.bash_profile,\n"
        "~/.bash_login, and ~/.profile, in that order.\n"
        "Files:\n"
        "- the first item\n"
        "- the second item\n"
        "lilo\tV:0\tOld\n"
        "grub\tV:23\tNew"
    )
    assert sentences(text, wrapped=True) == [
        "When Bash is invoked as an interactive login shell, or as a\nnon-interactive shell "
        "with the\n--login option, it reads /etc/profile.",
        "After that file, it looks for ~/.bash_profile,\n~/.bash_login, and ~/.profile, in "
        "that order.",
        "Files:",
        "- the first item",
        "- the second item",
        "lilo\tV:0\tOld",
        "grub\tV:23\tNew",
    ]
    # An answer or a list is not a wrapped document: every line stays its own.
    assert len(sentences(text)) == 10
