"""The web page without a browser: upload rules, escaping, the bind rule, rendering, and the
per-session chat handlers over a real app (the 135M model)."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import gradio as gr
import pytest

from rag.errors import BadInput
from rag.types import Answer, Citation, Hit
from rag.ui import render, uploads
from rag.ui.server import build_ui, check_bind, serve

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


# -- upload names, types and sizes ------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../x.txt", "x.txt"),
        ("..\\..\\windows\\x.md", "x.md"),
        (".hidden.md", "hidden.md"),
        ("a b?.html", "a_b.html"),
        ("Notes.PDF", "Notes.pdf"),
        ("résumé.md", "resume.md"),
        ("x" * 300 + ".txt", "x" * 96 + ".txt"),
    ],
)
def test_upload_names_are_made_safe(given, stored):
    assert uploads.safe_name(given) == stored


@pytest.mark.parametrize(
    "given", ["/etc/passwd", "payload.exe", "archive.tar.gz", "..txt", "", "../", "x.txt/"]
)
def test_unusable_upload_names_are_refused(given):
    with pytest.raises(BadInput) as err:
        uploads.safe_name(given)
    assert "\n" not in err.value.one_line()


def test_wrong_extension_says_what_is_accepted():
    with pytest.raises(BadInput, match=r"only .*\.txt.*\.pdf"):
        uploads.safe_name("report.odt")


def test_too_large_upload_is_refused_with_the_limit(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (1024 * 1024 + 1))
    with pytest.raises(BadInput, match=r"big.txt is 1.0 MB; the upload limit is 1 MB"):
        uploads.plan_uploads([(big, "big.txt")], max_mb=1)


def test_a_bad_file_in_a_batch_writes_nothing(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.exe"
    good.write_text("GANs were introduced in 2014.")
    bad.write_text("MZ")
    corpus = tmp_path / "corpus"
    with pytest.raises(BadInput):
        plan = uploads.plan_uploads([(good, "good.txt"), (bad, "bad.exe")], max_mb=5)
        for src, name in plan:
            uploads.store_upload(src, name, corpus)
    assert not corpus.exists() or not any(corpus.iterdir())


def test_too_many_files_at_once_are_refused_before_any_is_written(tmp_path):
    files = []
    for i in range(uploads.MAX_FILES + 1):
        f = tmp_path / f"note-{i}.txt"
        f.write_text("a note\n")
        files.append((f, f.name))
    with pytest.raises(BadInput, match=f"the page takes up to {uploads.MAX_FILES}"):
        uploads.plan_uploads(files, 20)
    assert len(uploads.plan_uploads(files[:-1], 20)) == uploads.MAX_FILES


def test_uploads_land_in_the_corpus_folder_only(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    corpus = tmp_path / "corpus"
    dest = uploads.store_upload(src, uploads.safe_name("../../evil.txt"), corpus)
    assert dest == corpus / "evil.txt" and dest.read_text() == "hello"
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in corpus.iterdir()] == ["evil.txt"]  # no temporary file left behind


def test_remove_accepts_only_listed_corpus_documents(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("a")
    (corpus / "sub" / "b.md").write_text("b")
    (corpus / ".secret.txt").write_text("s")
    (tmp_path / "outside.txt").write_text("o")
    assert uploads.corpus_files(corpus) == ["a.txt", "sub/b.md"]
    for name in ["../outside.txt", ".secret.txt", "/etc/passwd", "sub/../../outside.txt", ""]:
        with pytest.raises(BadInput):
            uploads.remove_file(corpus, name)
    assert (tmp_path / "outside.txt").exists() and (corpus / ".secret.txt").exists()
    uploads.remove_file(corpus, "sub/b.md")
    assert uploads.corpus_files(corpus) == ["a.txt"]


# -- escaping and rendering -----------------------------------------------------------------
def _hit(text: str, n: int = 1, **kw) -> Hit:
    fields = dict(
        id=f"h{n}",
        rank=n,
        score=0.5,
        text=text,
        context="Guide",
        source="corpus/guide.txt",
        title="Guide <b>title</b>",
        section="Intro & more",
        kind="prose",
        start=0,
        end=len(text),
    )
    fields.update(kw)
    return Hit(**fields)


def _answer(
    text: str, abstained: bool, citations: list[Citation], passages: list[Hit], **kw
) -> dict:
    return Answer(
        question="q?",
        answer=text,
        abstained=abstained,
        citations=citations,
        passages=passages,
        mode="hybrid",
        model="test",
        timings_ms={},
        **kw,
    ).to_json()


def test_passage_html_is_escaped_never_live():
    evil = 'Intro. <script>alert(1)</script> and <img src=x onerror="alert(2)"> GANs came in 2014.'
    hit = _hit(evil)
    data = _answer(
        "GANs came in 2014 [1].", False, [Citation(1, hit, ["GANs came in 2014."])], [hit]
    )
    # The expansion is model output, so it is escaped like the passages.
    for page in (render.render_answer(data), render.passages_html(data["passages"], evil)):
        assert "<script" not in page and "<img" not in page and "<b>" not in page
        assert "&lt;script&gt;alert&#40;1&#41;&lt;/script&gt;" in page
        assert "&lt;b&gt;title&lt;/b&gt;" in page and "Intro &amp; more" in page


def test_markdown_and_latex_in_passages_stay_text():
    text = "# Heading\n**bold** $x$ [link](http://x) `code` <i>&amp;</i>"
    out = render.esc(text)
    bare = re.sub(r"&#?\w+;", "", out)  # what is left outside entities
    for raw in ("#", "*", "$", "[", "(", "`", "http:", "<i>", "&"):
        assert raw not in bare
    assert html.unescape(out.replace("<br>", "\n")) == text  # shown exactly as written


def test_code_in_an_answer_is_preformatted_and_escaped():
    out = render.answer_text_html(
        "Run it [1].\n```python\nif a[1] < 2:\n    print('<b>')\n```\n[2] Done."
    )
    code = re.search(r'<pre class="rag-code"><code>(.*?)</code></pre>', out).group(1)
    assert html.unescape(code.replace("<br>", "\n")) == "if a[1] < 2:\n    print('<b>')"
    assert "<b>" not in out and out.count('class="rag-cite"') == 2  # a[1] is no marker


def test_answer_renders_markers_sources_and_highlighted_support():
    passage = (
        "GANs are influential. Introduced by Ian Goodfellow in 2014, GANs use two networks. "
        "Training is adversarial."
    )
    hit = _hit(passage)
    data = _answer(
        "Ian Goodfellow introduced GANs in 2014 [1].",
        False,
        [Citation(1, hit, ["Ian Goodfellow introduced GANs in 2014."])],
        [hit],
    )
    page = render.render_answer(data)
    assert '<span class="rag-cite">&#91;1&#93;</span>' in page
    assert "rag-refusal" not in page and 'class="rag-sources"' in page
    assert "Guide &lt;b&gt;title&lt;/b&gt;" in page and "corpus/guide.txt" in page
    assert (
        '<mark class="rag-support">'
        "Introduced by Ian Goodfellow in 2014, GANs use two networks.</mark>" in page
    )
    assert "<mark" not in page.split("</mark>", 1)[1]  # only the supporting sentence


def test_refusal_is_rendered_apart_without_sources():
    hit = _hit("Something unrelated.")
    data = _answer(
        "The documents I have do not answer this question, so I won't guess.", True, [], [hit]
    )
    page = render.render_answer(data)
    assert page.startswith('<div class="rag-refusal">') and render.NOT_FOUND_TITLE in page
    assert "rag-sources" not in page and "rag-cite" not in page
    declined = _answer(
        "I only answer questions from the indexed documents.",
        True,
        [],
        [],
        checks={"refused": "instruction to ignore the documents"},
    )
    assert render.DECLINED_TITLE in render.render_answer(declined)


def test_quality_is_the_share_of_supported_sentences():
    checks = {
        "sentences": [
            {"kept": [1], "verdict": "supported"},
            {"kept": [], "verdict": "unsupported"},
            {"verdict": "model declined"},
            {"kept": [2], "verdict": "moved"},
        ]
    }
    assert render.quality({"checks": checks}) == pytest.approx(0.667, abs=1e-3)
    assert render.quality({"checks": {}}) is None


# No accounts, no shared login: the page is the local user's, who may do everything.
LOCAL_USER = gr.Request(username=None, session_hash="local")


# -- the bind rule ----------------------------------------------------------------------------
def test_local_bind_needs_no_password():
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("localhost", "") is None
    assert check_bind("0.0.0.0", "alice:s3cret:with:colons") == ("alice", "s3cret:with:colons")
    assert check_bind("0.0.0.0", None, accounts=2) is None  # accounts sign everyone in


@pytest.mark.parametrize(
    ("host", "share"),
    [("0.0.0.0", False), ("192.168.1.20", False), ("::", False), ("127.0.0.1", True)],
)
def test_public_bind_without_password_is_refused(host, share):
    with pytest.raises(BadInput) as err:
        check_bind(host, None, share=share)
    line = err.value.one_line()
    assert "RAG_UI_AUTH" in line and "\n" not in line


@pytest.mark.parametrize("auth", ["alice", "alice:", ":pw"])
def test_malformed_password_is_refused(auth):
    with pytest.raises(BadInput, match="user:password"):
        check_bind("0.0.0.0", auth)


def test_serve_refuses_before_launching(tmp_path):
    from rag.app import RagApp
    from rag.settings import load_settings

    app = RagApp(load_settings(env={}, data_dir=tmp_path / "data", corpus=tmp_path / "nothing"))
    with pytest.raises(BadInput, match="RAG_UI_AUTH"):
        serve(app, host="0.0.0.0", port=0)
    assert not (tmp_path / "data" / "index").exists()  # nothing was opened


# -- the page over a real app -------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_app(tmp_path_factory, dense_encoder):
    from rag.app import RagApp
    from rag.settings import load_settings

    root = tmp_path_factory.mktemp("ui")
    shutil.copytree(CORPUS, root / "corpus")
    app = RagApp(
        load_settings(
            env={},
            data_dir=root / "data",
            corpus=root / "corpus",
            llm="smollm2-135m",
            max_tokens=48,
            threads=1,
        ),  # plumbing, not answer quality: short answers
        dense_encoder=dense_encoder,
    )
    app.ensure_index()
    yield app
    app.close()


def test_the_page_builds_and_exposes_chat(small_app):
    demo = build_ui(small_app)
    api = demo.get_api_info()["named_endpoints"]
    assert set(api) == {"/chat", "/ask"}  # the page's own events stay private
    assert [p["parameter_name"] for p in api["/chat"]["parameters"]] == ["message"]


def _turn(chat, question: str, session: str, conv=None, msgs=None, turns=None):
    request = gr.Request(username=None, session_hash=session)
    _, shown, msgs, pending = chat.start_turn(question, msgs or [], request)
    assert "Waiting for the model" in shown[-1]["content"]
    stream = chat.respond(pending, msgs, conv, turns or {}, "hybrid", 5, [], request)
    first = next(stream)
    assert "Searching the guides" in first[0][-1]["content"]
    *_, (chatbot, msgs, conv, turns, passages) = stream
    assert chatbot is msgs
    return msgs, conv, turns, passages


def test_sessions_keep_their_own_conversations_and_feedback(small_app):
    from rag.ui.chat import ChatHandlers

    chat = ChatHandlers(small_app)
    msgs_a, conv_a, turns_a, passages = _turn(chat, "Who introduced GANs?", "aaaa")
    msgs_b, conv_b, turns_b, _ = _turn(chat, "What does LSTM stand for?", "bbbb")
    assert conv_a and conv_b and conv_a != conv_b
    assert [m["content"] for m in small_app.history.messages(conv_a) if m["role"] == "user"] == [
        "Who introduced GANs?"
    ]
    assert [m["content"] for m in small_app.history.messages(conv_b) if m["role"] == "user"] == [
        "What does LSTM stand for?"
    ]
    assert "rag-hit" in passages  # the retrieved-passages panel is filled

    # the final message is the rendered stored answer, and feedback points at it
    stored = small_app.history.messages(conv_a)[-1]
    assert turns_a[1]["message_id"] == stored["id"]
    assert msgs_a[1]["content"] == render.render_answer(stored["payload"])
    request = gr.Request(username=None, session_hash="aaaa")
    chat.feedback(turns_a, gr.LikeData(None, {"index": 1, "value": "x", "liked": False}), request)
    fb = small_app.history.feedback()[-1]
    assert (fb["message_id"], fb["rating"], fb["user_id"]) == (stored["id"], -1, "session-aaaa")
    assert fb["question"] == "Who introduced GANs?" and fb["answer"] == stored["payload"]["answer"]

    # a follow-up continues the same conversation; reopening shows both turns
    msgs_a, conv_a2, turns_a, _ = _turn(chat, "When was that?", "aaaa", conv_a, msgs_a, turns_a)
    assert conv_a2 == conv_a and len(msgs_a) == 4 and set(turns_a) == {1, 3}
    reopened, _, cid, turns, _ = chat.open_conversation(conv_a, request)
    assert cid == conv_a and reopened == msgs_a and set(turns) == {1, 3}


def test_a_second_question_while_the_first_waits_is_refused_then_admitted(small_app):
    from rag.ui.chat import ChatHandlers

    chat = ChatHandlers(small_app)
    request = gr.Request(username=None, session_hash="dddd")
    other = gr.Request(username=None, session_hash="eeee")
    _, _, msgs, pending = chat.start_turn("Who introduced GANs?", [], request)
    with pytest.raises(gr.Error, match="previous question is still being answered"):
        chat.start_turn("What is a VAE?", msgs, request)
    chat.start_turn("What is a VAE?", [], other)  # another person keeps their own place
    chat.limits.release("session-eeee")
    *_, last = chat.respond(pending, msgs, None, {}, "hybrid", 5, [], request)
    assert "rag-" in last[0][-1]["content"]  # answered, and the place given back:
    chat.start_turn("What is a VAE?", [], request)


def test_reopening_an_unknown_conversation_is_a_one_line_error(small_app):
    from rag.ui.chat import ChatHandlers

    with pytest.raises(gr.Error, match="choose a conversation"):
        ChatHandlers(small_app).open_conversation(
            "../../nope", gr.Request(username=None, session_hash="c")
        )


def test_adding_a_bad_batch_is_a_one_line_error_and_changes_nothing(small_app, tmp_path):
    from rag.ui.documents import DocumentHandlers

    good, bad = tmp_path / "good.txt", tmp_path / "evil.sh"
    good.write_text("fine")
    bad.write_text("rm -rf /")
    before = uploads.corpus_files(small_app.settings.corpus)
    with pytest.raises(gr.Error, match=r"cannot add 'evil.sh'"):
        DocumentHandlers(small_app).add([str(good), str(bad)], LOCAL_USER)
    assert uploads.corpus_files(small_app.settings.corpus) == before


def test_only_an_admin_changes_the_documents(small_app, tmp_path):
    from rag.accounts import Accounts
    from rag.ui.access import PageAccess
    from rag.ui.documents import DocumentHandlers

    accounts = Accounts(tmp_path / "accounts.sqlite3")
    accounts.add("alice", "alice-password", "admin")
    accounts.add("bob", "bob-password")
    docs = DocumentHandlers(small_app, PageAccess(accounts))
    note = tmp_path / "reader-note.txt"
    note.write_text("Readers may not add this.\n", "utf-8")
    before = uploads.corpus_files(small_app.settings.corpus)
    for who in ("bob", None, "mallory"):
        request = gr.Request(username=who, session_hash="r")
        with pytest.raises(gr.Error, match="only an admin"):
            docs.add([str(note)], request)
        with pytest.raises(gr.Error, match="only an admin"):
            docs.remove(before[0], request)
        shown = docs.controls(request)
        assert all(u["visible"] is False for u in shown[:4]) and "Only an admin" in shown[4]
    assert uploads.corpus_files(small_app.settings.corpus) == before
    admin = gr.Request(username="alice", session_hash="a")
    assert all(u["visible"] is True for u in docs.controls(admin)[:4])
    status, *_, note_shown = docs.add([str(note)], admin)
    assert "Added reader&#45;note.txt" in status  # escaped for Markdown
    assert "Indexing in the background" in status and note_shown.startswith("Added")
    assert docs.indexer.wait(120)
    assert "corpus/reader-note.txt" in small_app.sources()
    status, *_ = docs.tick(0, note_shown)
    assert status.startswith("Added reader") and "Index updated: " in status
    docs.remove("reader-note.txt", admin)
    assert docs.indexer.wait(120)
    assert uploads.corpus_files(small_app.settings.corpus) == before
    assert "corpus/reader-note.txt" not in small_app.sources()
