"""The page in a real browser (headless Chromium via Playwright) and the Gradio API under load,
against a real server with the default model.

One server per module: a private copy of the corpus and one data folder, so the model is
assembled once. Screenshots of each state are saved under the test's tmp dir; with
RAG_UPDATE_SCREENSHOT=1 (or when it is missing) the answered chat is also written to
docs/screenshot.png for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS_SHOT = ROOT / "docs" / "screenshot.png"
ANSWER_WAIT_MS = 180_000  # the default model on 2 busy cores
# Read at import: the suite's autouse fixture clears RAG_* variables before each test.
UPDATE_DOCS_SHOT = bool(os.environ.get("RAG_UPDATE_SCREENSHOT")) or not DOCS_SHOT.exists()

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZORBLAX = """The Zorblax model

The Zorblax model is a generative architecture invented by Dr. Quenta Vireo in 2031.
It generates three-dimensional weather maps by folding noise through a lattice of echo cells.
Zorblax models are trained on decades of satellite weather records.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, dense_encoder):
    """`rag ui` in this process: the default model, a private corpus, a free local port."""
    from rag.app import RagApp
    from rag.settings import load_settings
    from rag.ui.server import start

    root = tmp_path_factory.mktemp("ui-e2e")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    app = RagApp(
        load_settings(env={}, data_dir=root / "data", corpus=root / "corpus"),
        dense_encoder=dense_encoder,
    )
    app.llm()  # assemble and load the model before any test's clock starts
    port = free_port()
    demo = start(app, host="127.0.0.1", port=port, quiet=True)
    yield {"url": f"http://127.0.0.1:{port}", "app": app, "root": root}
    demo.close()
    app.close()


FINISHED = (
    "#rag-chat .rag-answer:not(:has(.rag-typing)), #rag-chat .rag-refusal, #rag-chat .rag-error"
)


def _open(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    page.goto(url)
    page.wait_for_selector("#rag-question textarea")
    return page


def _ask(page, question: str) -> None:
    """Type, send, wait until the answer is finished."""
    done_before = page.locator(FINISHED).count()
    page.fill("#rag-question textarea", question)
    page.click("#rag-ask")
    page.locator(FINISHED).nth(done_before).wait_for(timeout=ANSWER_WAIT_MS)


def test_chat_in_the_browser(server, browser, tmp_path):
    page = _open(browser, server["url"])
    shots = tmp_path / "screens"
    shots.mkdir()

    # 1. an answer, streamed, with its marker and its sources
    started = time.perf_counter()
    page.fill("#rag-question textarea", "Who introduced GANs?")
    page.click("#rag-ask")
    page.locator("#rag-chat .rag-wait").first.wait_for(
        timeout=10_000
    )  # the waiting note comes first
    page.locator(FINISHED).first.wait_for(timeout=ANSWER_WAIT_MS)
    answer = page.locator("#rag-chat .rag-answer").first
    text = answer.inner_text()
    assert "Goodfellow" in text and "[1]" in text, text
    sources = page.locator("#rag-chat .rag-sources").first
    assert "Introduced by Ian Goodfellow in 2014" in sources.inner_text()
    assert "Goodfellow" in sources.locator("mark.rag-support").first.inner_text()
    assert "types-of-generative-models.txt" in sources.inner_text()
    page.get_by_text("Retrieved passages, with their scores").click()
    page.locator("#rag-passages .rag-hit").first.wait_for(timeout=10_000)
    assert page.locator("#rag-passages .rag-hit").count() >= 3
    assert "score" in page.locator("#rag-passages .rag-hit").first.inner_text()
    page.get_by_text("Retrieved passages, with their scores").click()
    page.screenshot(path=str(shots / "1-answer.png"))
    print(f"answer in {time.perf_counter() - started:.1f} s")

    # 2. a question the guides do not answer: the refusal, set apart
    _ask(page, "Who invented the variational autoencoder?")
    refusal = page.locator("#rag-chat .rag-refusal").last
    assert "Not in the documents" in refusal.text_content()  # (shown in capitals by the style)
    assert "do not answer" in refusal.text_content()
    assert page.locator("#rag-chat .rag-answer").count() == 1  # no answer text was invented
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "2-refusal.png"))
    if UPDATE_DOCS_SHOT:
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shots / "2-refusal.png", DOCS_SHOT)
        assert DOCS_SHOT.stat().st_size < 200_000

    # 3. a new document, uploaded and indexed from the Documents tab
    doc = tmp_path / "Zorblax model notes.txt"
    doc.write_text(ZORBLAX)
    page.get_by_role("tab", name="Documents").click()
    page.locator("#rag-upload input[type=file]").set_input_files(str(doc))
    page.locator("#rag-upload [data-testid=download-link]").first.wait_for(
        timeout=30_000
    )  # uploaded
    page.click("#rag-add")
    page.locator("#rag-doc-status").get_by_text("Index updated").wait_for(timeout=120_000)
    assert "Zorblax_model_notes.txt" in page.locator("#rag-doc-status").inner_text()
    assert "corpus/Zorblax_model_notes.txt" in page.locator("#rag-docs").inner_text()
    assert (server["root"] / "corpus" / "Zorblax_model_notes.txt").read_text() == ZORBLAX
    page.screenshot(path=str(shots / "3-documents.png"), full_page=True)

    # 4. ...and answered from, with a citation of it, in a fresh conversation
    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function(
        "document.querySelectorAll('#rag-chat .rag-answer, #rag-chat .rag-refusal').length === 0"
    )
    _ask(page, "Who invented the Zorblax model?")
    answer = page.locator("#rag-chat .rag-answer").last
    assert "Quenta Vireo" in answer.inner_text() and "[1]" in answer.inner_text(), (
        answer.inner_text()
    )
    cited = page.locator("#rag-chat .rag-sources").last.inner_text()
    assert "Zorblax_model_notes.txt" in cited and "Dr. Quenta Vireo in 2031" in cited
    page.screenshot(path=str(shots / "4-new-document.png"))

    # 5. the conversations are listed and the first one reopens
    page.click("#rag-convs input")
    options = page.locator("[data-testid=dropdown-option]")
    options.first.wait_for(timeout=10_000)
    titles = options.all_inner_texts()
    assert any(t.startswith("Who invented the Zorblax model?") for t in titles), titles
    assert any(t.startswith("Who introduced GANs?") for t in titles), titles
    page.get_by_role("option", name="Who introduced GANs?").first.click()
    page.get_by_role("button", name="Reopen").click()
    page.locator("#rag-chat .rag-refusal").first.wait_for(timeout=10_000)
    assert "Goodfellow" in page.locator("#rag-chat .rag-answer").first.inner_text()
    page.screenshot(path=str(shots / "5-reopened.png"))

    # 6. removing the document takes it out of the folder and the index
    page.get_by_role("tab", name="Documents").click()
    page.click("#rag-remove-choice input")
    page.get_by_role("option", name="Zorblax_model_notes.txt").click()
    page.click("#rag-remove")
    page.locator("#rag-doc-status").get_by_text("Removed Zorblax_model_notes.txt").wait_for(
        timeout=60_000
    )
    page.locator("#rag-docs").get_by_text("Zorblax").wait_for(state="detached", timeout=10_000)
    assert not (server["root"] / "corpus" / "Zorblax_model_notes.txt").exists()
    assert not any("Zorblax" in name for name in server["app"].sources())
    page.screenshot(path=str(shots / "6-removed.png"), full_page=True)
    print(f"screenshots: {shots}")


def test_two_tabs_at_once_wait_in_line_and_do_not_mix(server, browser):
    a, b = _open(browser, server["url"]), _open(browser, server["url"])
    a.fill("#rag-question textarea", "What are the two parts of a GAN and what does each do?")
    b.fill("#rag-question textarea", "What does LSTM stand for?")
    a.click("#rag-ask")
    # once A holds the model (its waiting note is gone), B's question has to wait its turn
    a.locator("#rag-chat .rag-wait").first.wait_for(timeout=10_000)
    a.locator("#rag-chat .rag-wait", has_text="Waiting for the model").wait_for(
        state="detached", timeout=60_000
    )
    b.click("#rag-ask")
    assert "Waiting for the model" in b.locator("#rag-chat .rag-wait").first.inner_text(
        timeout=10_000
    )
    b.get_by_text(re.compile(r"queue: \d+/\d+")).first.wait_for(
        timeout=10_000
    )  # Gradio's queue position
    for page in (a, b):
        page.locator(FINISHED).first.wait_for(timeout=2 * ANSWER_WAIT_MS)
    assert a.locator("#rag-chat [data-testid=user]").all_inner_texts() == [
        "What are the two parts of a GAN and what does each do?"
    ]
    assert b.locator("#rag-chat [data-testid=user]").all_inner_texts() == [
        "What does LSTM stand for?"
    ]
    answers_a = a.locator("#rag-chat .rag-answer").all_inner_texts()
    answers_b = b.locator("#rag-chat .rag-answer").all_inner_texts()
    assert len(answers_a) == 1 and "Discriminator" in answers_a[0] and "LSTM" not in answers_a[0]
    assert (
        len(answers_b) == 1
        and "Long Short-Term Memory" in answers_b[0]
        and "Discriminator" not in answers_b[0]
    )


# Eight questions whose answers are distinct and checkable (from eval/gold.jsonl).
EIGHT = {
    "Who introduced GANs, and when?": ["Goodfellow"],
    "What is the main weakness of VAEs?": ["quality", "blurry"],
    "Which well-known systems are built on diffusion models?": ["Stable Diffusion", "DALL"],
    "Why do RNNs struggle with long sequences?": ["vanishing gradient"],
    "What are the two parts of a GAN and what does each do?": ["Discriminator"],
    "What kind of transformations do flow-based models use?": ["reversible", "invertible"],
    "Which paper introduced transformers?": ["Attention Is All You Need", "Vaswani"],
    "What does LSTM stand for?": ["Long Short-Term Memory", "Long Short Term Memory"],
}


def test_eight_concurrent_api_chats(server):
    from gradio_client import Client

    barrier = threading.Barrier(len(EIGHT))

    def one(question: str) -> tuple[str, float]:
        client = Client(server["url"], verbose=False)
        barrier.wait()  # all eight in flight together
        started = time.perf_counter()
        return client.predict(question, api_name="/chat"), time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(len(EIGHT)) as pool:
        results = dict(zip(EIGHT, pool.map(one, EIGHT)))
    print(f"8 concurrent answers in {time.perf_counter() - started:.1f} s")
    answers = {q: r[0] for q, r in results.items()}
    for question, expected in EIGHT.items():
        answer = answers[question]
        assert isinstance(answer, str) and answer.strip(), question
        assert any(k.lower() in answer.lower() for k in expected), (question, answer)
        assert "[1]" in answer, (question, answer)
    assert len(set(answers.values())) == len(EIGHT)  # eight separate answers

    # the JSON endpoint carries the citations with the answer
    full = Client(server["url"], verbose=False).predict("Who introduced GANs?", api_name="/ask")
    assert full["abstained"] is False and full["citations"][0]["n"] == 1
    assert "Goodfellow" in full["citations"][0]["text"]
