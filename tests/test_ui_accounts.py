"""Two accounts on one page, in a real browser (headless Chromium via Playwright) against a real
server: an admin and a reader, each in their own browser context. Neither sees the other's
conversations; the reader cannot change the documents, the admin can; a session lapses and a
removed account is signed out. The model is SmolLM2 with short answers: this is about who sees
what, not about answer quality (tests/test_ui_e2e.py has the default model)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
ANSWER_WAIT_MS = 120_000

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FINISHED = (
    "#rag-chat .rag-answer:not(:has(.rag-typing)), #rag-chat .rag-refusal, #rag-chat .rag-error"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, dense_encoder):
    from rag.accounts import Accounts
    from rag.app import RagApp
    from rag.settings import load_settings
    from rag.ui.server import start

    root = tmp_path_factory.mktemp("ui-accounts")
    shutil.copytree(ROOT / "corpus", root / "corpus")
    settings = load_settings(
        env={},
        data_dir=root / "data",
        corpus=root / "corpus",
        llm="smollm2-135m",
        max_tokens=32,
        threads=1,
    )
    accounts = Accounts(settings.accounts_path)
    accounts.add("alice", "alice-password", "admin")
    accounts.add("bob", "bob-password")
    accounts.close()
    app = RagApp(settings, dense_encoder=dense_encoder)
    port = free_port()
    demo = start(app, host="127.0.0.1", port=port, quiet=True)
    yield {"url": f"http://127.0.0.1:{port}", "app": app, "root": root, "demo": demo}
    demo.close()
    app.close()


def _login(browser, url: str, name: str, password: str):
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    page.goto(url)
    page.locator("input[type=password]").wait_for(timeout=30_000)
    page.locator("input[data-testid=textbox]").fill(name)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#rag-question textarea", timeout=30_000)
    return page


def _ask(page, question: str) -> None:
    done_before = page.locator(FINISHED).count()
    page.fill("#rag-question textarea", question)
    page.click("#rag-ask")
    page.locator(FINISHED).nth(done_before).wait_for(timeout=ANSWER_WAIT_MS)


def _conversation_titles(page) -> list[str]:
    page.reload()
    page.wait_for_selector("#rag-question textarea", timeout=30_000)
    page.click("#rag-convs input")
    options = page.locator("[data-testid=dropdown-option]")
    try:
        options.first.wait_for(timeout=5_000)
    except Exception:
        return []
    titles = options.all_inner_texts()
    page.keyboard.press("Escape")
    return titles


def _signed_out(page) -> bool:
    page.reload()
    page.locator("input[type=password], #rag-question textarea").first.wait_for(timeout=30_000)
    return page.locator("input[type=password]").count() == 1


def test_a_wrong_password_is_refused(server, browser):
    page = browser.new_context().new_page()
    page.goto(server["url"])
    page.locator("input[data-testid=textbox]").fill("alice")
    page.locator("input[type=password]").fill("bob-password")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Incorrect credentials").wait_for(timeout=10_000)
    assert page.locator("#rag-question textarea").count() == 0


def test_two_accounts_see_only_their_own_and_only_the_admin_changes_documents(
    server, browser, tmp_path
):
    alice = _login(browser, server["url"], "alice", "alice-password")
    bob = _login(browser, server["url"], "bob", "bob-password")
    _ask(alice, "Who introduced GANs?")
    _ask(bob, "What does LSTM stand for?")

    alice_sees = _conversation_titles(alice)
    bob_sees = _conversation_titles(bob)
    assert any(t.startswith("Who introduced GANs?") for t in alice_sees), alice_sees
    assert not any(t.startswith("What does LSTM") for t in alice_sees), alice_sees
    assert any(t.startswith("What does LSTM stand for?") for t in bob_sees), bob_sees
    assert not any(t.startswith("Who introduced GANs?") for t in bob_sees), bob_sees
    owners = {c["title"]: c for c in server["app"].history.conversations(user_id="alice")}
    assert list(owners) == ["Who introduced GANs?"]

    # The reader sees the documents, not the controls that change them.
    bob.get_by_role("tab", name="Documents").click()
    bob.locator("#rag-docs").get_by_text("corpus/types-of-generative-models.txt").wait_for(
        timeout=10_000
    )
    bob.locator("#rag-doc-status").get_by_text("Only an admin").wait_for(timeout=10_000)
    for control in ("#rag-upload", "#rag-add", "#rag-remove"):
        assert not bob.locator(control).is_visible(), control

    # The admin adds a document from the page.
    doc = tmp_path / "Harbor notes.txt"
    doc.write_text("Harbor Sync keeps seven daily snapshots by default.\n", "utf-8")
    alice.get_by_role("tab", name="Documents").click()
    alice.locator("#rag-upload input[type=file]").set_input_files(str(doc))
    alice.locator("#rag-upload [data-testid=download-link]").first.wait_for(timeout=30_000)
    alice.click("#rag-add")
    alice.locator("#rag-doc-status").get_by_text("Index updated").wait_for(timeout=120_000)
    assert "corpus/Harbor_notes.txt" in server["app"].sources()
    hits = server["app"].search("How many daily snapshots does Harbor Sync keep?", top_k=3)
    assert hits[0].source == "corpus/Harbor_notes.txt"


def _login_cookies(url: str, name: str, password: str) -> str:
    import httpx

    r = httpx.post(f"{url}/login", data={"username": name, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    return "; ".join(f"{k}={v}" for k, v in r.cookies.items())


def _stream_upload(url: str, cookie: str, size: int, chunk: int = 1 << 20) -> tuple[int, int, str]:
    """POST a `size`-byte file to the page's upload endpoint a chunk at a time, stopping as
    soon as the server answers. Returns (status, bytes sent, response text)."""
    import select
    import socket
    from urllib.parse import urlparse

    boundary = "raguploadboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=60)
    sock.sendall(
        (
            f"POST /gradio_api/upload HTTP/1.1\r\nHost: {where.netloc}\r\nCookie: {cookie}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + size + len(tail)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + head
    )
    sent, block = 0, b"The same line of a very large upload.\n" * (chunk // 38 + 1)
    try:
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: it read no further
            piece = block[: min(chunk, size - sent)]
            sock.sendall(piece)
            sent += len(piece)
            time.sleep(0.01)
        else:
            sock.sendall(tail)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed on us mid-body: refused
    response = b""
    try:
        while chunk_in := sock.recv(65536):
            response += chunk_in
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, sent, response.decode("utf-8", "replace")


def test_a_50_mb_upload_is_refused_while_it_streams_and_chats_go_on(server, tmp_path):
    from gradio_client import Client

    limit = server["app"].settings.max_upload_mb * 1024 * 1024
    stop = threading.Event()
    answers: dict[str, list[float]] = {"alice": [], "bob": []}
    errors: list[str] = []
    upload_started = [0.0]

    def chat(name: str, password: str) -> None:
        client = Client(server["url"], auth=(name, password), verbose=False)
        while not stop.is_set():
            try:
                answer = client.predict("Who introduced GANs?", api_name="/chat")
                assert isinstance(answer, str) and answer.strip()
                answers[name].append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                return

    users = [
        threading.Thread(target=chat, args=("alice", "alice-password")),
        threading.Thread(target=chat, args=("bob", "bob-password")),
    ]
    for t in users:
        t.start()
    try:
        cookie = _login_cookies(server["url"], "alice", "alice-password")
        upload_started[0] = time.monotonic()
        status, sent, text = _stream_upload(server["url"], cookie, 50 * 1024 * 1024)
        # Both keep getting answers after the upload began.
        deadline = time.monotonic() + 180
        while (
            time.monotonic() < deadline
            and not errors
            and not all(any(t > upload_started[0] for t in got) for got in answers.values())
        ):
            time.sleep(0.5)
    finally:
        stop.set()
        for t in users:
            t.join(240)
    print(f"50 MB upload refused after {sent / 2**20:.1f} MB sent (limit {limit / 2**20:.0f} MB)")
    assert not errors, errors
    assert status == 413, text[-300:]
    assert "maximum allowed size" in text
    assert limit < sent < 50 * 1024 * 1024, sent  # refused past the limit, before the end
    for name, got in answers.items():
        assert any(t > upload_started[0] for t in got), name


# Last: it removes an account.
def test_a_session_lapses_and_a_removed_account_is_signed_out(server, browser):
    from rag.accounts import Accounts

    sessions = server["demo"].server_app.tokens
    alice = _login(browser, server["url"], "alice", "alice-password")
    bob = _login(browser, server["url"], "bob", "bob-password")
    assert not _signed_out(bob)

    # Removing an account ends its sessions at the next request, not at their expiry.
    accounts = Accounts(server["app"].settings.accounts_path)
    accounts.remove("bob")
    accounts.close()
    assert _signed_out(bob)
    assert not _signed_out(alice)

    # A session lapses once its lifetime (RAG_UI_SESSION_HOURS) has passed.
    ttl = sessions.ttl_s
    sessions.ttl_s = 1.0
    try:
        time.sleep(1.5)
        assert _signed_out(alice)
    finally:
        sessions.ttl_s = ttl
    again = _login(browser, server["url"], "alice", "alice-password")
    assert not _signed_out(again)
