"""The Gradio page (`build_ui`) and the server (`serve`, which `rag ui` calls).

The page is a shell over one RagApp: Chat (streamed, cited answers; controls; retrieved
passages), Documents (add, list, remove) and past conversations. Questions to the model queue
in one line (the LLM answers one at a time) and the page says when a question is waiting.

API (gradio_client): `Client(url).predict("Who introduced GANs?", api_name="/chat")` returns
the answer text with its [n] markers; `api_name="/ask"` returns the `rag ask --json` object.
`start` also serves rag/server.py's JSON API over the same app, on 127.0.0.1, so the other rag
commands go through this process, which holds the index.
"""

from __future__ import annotations

import ipaddress
import sys

import gradio as gr

from rag.app import RagApp, model_presets
from rag.errors import BadInput
from rag.ui import render
from rag.ui.access import ExpiringSessions, PageAccess
from rag.ui.chat import ChatHandlers
from rag.ui.documents import DocumentHandlers
from rag.ui.style import CSS, theme
from rag.ui.uploads import ALLOWED

EXAMPLES = [
    "Who introduced GANs, and when?",
    "What are the limitations of VAEs?",
    "Which model type suits image generation best?",
    "How do diffusion models generate data?",
]
LLM_QUEUE = "llm"  # every event that runs the model waits in this one line


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user.strip() or not password:
        raise BadInput(
            "the UI password must look like user:password", "set RAG_UI_AUTH=user:password"
        )
    return user.strip(), password


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(
    host: str, auth: str | None, share: bool = False, accounts: int = 0
) -> tuple[str, str] | None:
    """The shared login to launch with, if any. Serving beyond this machine needs sign-in:
    accounts (`rag users add`) or the shared RAG_UI_AUTH login."""
    creds = parse_auth(auth)
    if creds is None and not accounts and (share or not is_local(host)):
        where = "a public share link" if share else f"{host}"
        raise BadInput(
            f"refusing to serve the UI on {where} without sign-in (no accounts, no RAG_UI_AUTH)",
            "run: rag users add NAME --admin, or keep the default host 127.0.0.1",
        )
    return creds


def _model_choices(current: str) -> list[str]:
    presets = model_presets()
    return presets + ([current] if current not in presets else [])


def build_ui(app: RagApp, access: PageAccess | None = None) -> gr.Blocks:
    s = app.settings
    access = access or PageAccess()
    chat = ChatHandlers(app)
    docs = DocumentHandlers(app, access)
    private = {"api_visibility": "private"}

    with gr.Blocks(title="rag: ask your documents", analytics_enabled=False) as demo:
        msgs = gr.State([])  # this tab's chat messages (rendered)
        conv = gr.State(None)  # this tab's conversation id
        turns = gr.State({})  # chat message index → stored answer, for feedback
        pending = gr.State("")  # the question between "shown" and "answered"

        gr.Markdown(
            "# rag: ask your documents\n"
            "Answers come only from the indexed guides. Every sentence carries a citation [n] "
            "that was checked against its passage; when the guides do not hold the answer, "
            "it says so.",
            elem_id="rag-header",
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            label="Conversation",
                            elem_id="rag-chat",
                            height=600,
                            latex_delimiters=[],
                            feedback_options=("Like", "Dislike"),
                            buttons=["copy"],
                            placeholder="Ask a question about the indexed documents.",
                        )
                        with gr.Row():
                            box = gr.Textbox(
                                placeholder="Ask about your documents, e.g. Who introduced GANs?",
                                show_label=False,
                                scale=8,
                                container=False,
                                max_lines=6,
                                elem_id="rag-question",
                            )
                            ask_btn = gr.Button(
                                "Ask", variant="primary", scale=1, min_width=90, elem_id="rag-ask"
                            )
                        gr.Examples(EXAMPLES, inputs=[box], label="Try")
                        with gr.Accordion("Retrieved passages, with their scores", open=False):
                            passages = gr.HTML(render.passages_html([]), elem_id="rag-passages")
                    with gr.Column(scale=1, min_width=270):
                        with gr.Group():
                            new_btn = gr.Button("New conversation", size="sm")
                            conv_dd = gr.Dropdown(
                                label="Past conversations",
                                choices=[],
                                value=None,
                                elem_id="rag-convs",
                            )
                            open_btn = gr.Button("Reopen", size="sm")
                        mode = gr.Radio(
                            ["hybrid", "dense", "sparse"], value=s.mode, label="Retrieval mode"
                        )
                        top_k = gr.Slider(
                            1, 20, value=s.top_k, step=1, label="Passages to retrieve"
                        )
                        guides = gr.CheckboxGroup(
                            [],
                            label="Guides to search",
                            info="None ticked: all of them.",
                            elem_id="rag-guides",
                        )
                        gr.Dropdown(
                            _model_choices(s.llm),
                            value=s.llm,
                            label="Model",
                            interactive=False,
                            info=(
                                "Chosen at start-up: set RAG_LLM (a preset or a .gguf file) "
                                "and restart."
                            ),
                        )
            with gr.Tab("Documents", id="documents"):
                summary = gr.Markdown()
                with gr.Row():
                    with gr.Column():
                        files = gr.File(
                            label=(
                                f"Add documents ({', '.join(ALLOWED)}; "
                                f"up to {s.max_upload_mb} MB each)"
                            ),
                            file_count="multiple",
                            file_types=list(ALLOWED),
                            elem_id="rag-upload",
                        )
                        add_btn = gr.Button(
                            "Add to the index", variant="primary", elem_id="rag-add"
                        )
                    with gr.Column():
                        remove_dd = gr.Dropdown(
                            label="Document in the corpus folder",
                            choices=[],
                            elem_id="rag-remove-choice",
                        )
                        remove_btn = gr.Button(
                            "Remove from the index", variant="stop", elem_id="rag-remove"
                        )
                status = gr.Markdown(elem_id="rag-doc-status")
                table = gr.Dataframe(
                    headers=["document", "passages"],
                    datatype=["str", "number"],
                    interactive=False,
                    label="Indexed documents",
                    elem_id="rag-docs",
                )

        # Asking: show the question at once (outside the queue), then answer in the model's line.
        for trigger in (box.submit, ask_btn.click):
            trigger(
                chat.start_turn, [box, msgs], [box, chatbot, msgs, pending], queue=False, **private
            ).success(  # not when start_turn refused the question (the limits)
                chat.respond,
                [pending, msgs, conv, turns, mode, top_k, guides],
                [chatbot, msgs, conv, turns, passages],
                concurrency_id=LLM_QUEUE,
                concurrency_limit=1,
                show_progress="minimal",
                **private,
            ).then(chat.conversation_choices, None, conv_dd, **private)
        chatbot.like(chat.feedback, [turns], None, **private)
        new_btn.click(
            chat.new_conversation, None, [chatbot, msgs, conv, turns, passages], **private
        )
        open_btn.click(
            chat.open_conversation, [conv_dd], [chatbot, msgs, conv, turns, passages], **private
        )

        doc_outputs = [table, guides, remove_dd, summary]
        doc_note = gr.State("")  # this page's last change, shown with the indexing progress
        seen_runs = gr.State(0)  # finished indexing runs this page has shown
        # Adding and removing return at once; the index follows in the background, outside
        # the model's line, and a timer shows its progress.
        add_btn.click(
            docs.add,
            [files],
            [status, files, *doc_outputs, doc_note],
            concurrency_id="documents",
            concurrency_limit=1,
            **private,
        )
        remove_btn.click(
            docs.remove,
            [remove_dd],
            [status, *doc_outputs, doc_note],
            concurrency_id="documents",
            concurrency_limit=1,
            **private,
        )
        gr.Timer(1.0).tick(
            docs.tick,
            [seen_runs, doc_note],
            [status, *doc_outputs, seen_runs],
            queue=False,
            **private,
        )
        demo.load(docs.refresh, None, doc_outputs, **private)
        # Readers see the documents but not the controls that change them (the handlers
        # check the role again: hiding a button is no permission).
        demo.load(docs.controls, None, [files, add_btn, remove_dd, remove_btn, status], **private)
        demo.load(chat.conversation_choices, None, conv_dd, **private)

        # The API: plain functions, in the same line as the page's questions.
        gr.api(chat.api_chat, api_name="chat", concurrency_id=LLM_QUEUE, concurrency_limit=1)
        gr.api(chat.api_ask, api_name="ask", concurrency_id=LLM_QUEUE, concurrency_limit=1)
    return demo


def start(
    app: RagApp,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    share: bool = False,
    quiet: bool = False,
    api: bool = True,
    api_port: int = 0,
) -> gr.Blocks:
    """Check the bind, start the JSON API (rag/server.py) over the same app, index the corpus if
    the index is empty, launch; returns at once. The API listens on 127.0.0.1 whatever `host`
    is: it is how `rag ask` and the other commands reach the index this process owns, and it is
    stopped with the page (`demo.close()`)."""
    accounts = app.accounts if app.settings.accounts_path.exists() else None
    creds = check_bind(
        host, auth or app.settings.ui_auth, share, accounts=len(accounts) if accounts else 0
    )
    access = PageAccess(accounts, creds)
    served = None
    if api:
        from rag.server import ApiServer

        served = ApiServer(app, port=api_port).start()  # before indexing: commands wait, not fail
    try:
        report = app.ensure_index()
        if report is not None and not quiet:
            sys.stderr.write(f"indexed the corpus: {report.summary()}\n")
        demo = build_ui(app, access)
        demo.queue(default_concurrency_limit=4, max_size=256)
        demo.launch(
            server_name=host,
            server_port=port,
            auth=access.check if access.enabled else None,
            share=share,
            prevent_thread_lock=True,
            theme=theme(),
            css=CSS,
            max_file_size=app.settings.max_upload_mb * 1024 * 1024,
            footer_links=["api"],
            quiet=quiet,
            auth_message="Sign in to ask the documents." if access.enabled else None,
        )
        if access.enabled:
            # Logins lapse, and end when the account is removed (Gradio's own tokens never do).
            demo.server_app.tokens = ExpiringSessions(
                app.settings.ui_session_hours * 3600, access.still_valid, access.login_name
            )
    except BaseException:
        if served is not None:
            served.close()
        raise
    if served is not None:
        _close_together(demo, served)
        if not quiet:
            sys.stderr.write(
                f"rag ui: the rag commands reach this index through {served.url} "
                f"(token in {served.file})\n"
            )
    return demo


def _close_together(demo: gr.Blocks, served) -> None:
    """Every caller that stops the page with demo.close() stops the API too, and removes its
    server.json, so no command is sent to a server that is gone."""
    close_page = demo.close

    def close(*args, **kwargs):
        served.close()
        return close_page(*args, **kwargs)

    demo.close = close
    demo.rag_api = served


def serve(
    app: RagApp,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    share=False,
    api_port: int = 0,
) -> None:
    """Serve the page (and the API) until interrupted. Binding anywhere but this machine needs
    sign-in: accounts (`rag users`) or a shared "user:password" (the argument or RAG_UI_AUTH);
    without either this raises BadInput."""
    demo = start(app, host, port, auth, share, api_port=api_port)
    try:
        demo.block_thread()
    finally:
        demo.close()
