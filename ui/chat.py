"""What the page's events do, per browser session. A thin shell over RagApp: every answer comes
from `app.ask_stream` / `app.ask`; this module only keeps the session's state (its
conversation, its messages, which chat message is which stored answer) and renders.

Session state lives in gr.State values, one copy per browser tab, so tabs never share a
conversation. RagError becomes gr.Error with its one-line message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from rag.app import RagApp
from rag.errors import BadInput, RagError
from rag.ui import render
from rag.ui.limits import QuestionLimits

WAITING = "Waiting for the model…"
READING = "Searching the guides…"


@contextmanager
def user_errors() -> Iterator[None]:
    """RagError → gr.Error, so the page shows one line instead of a traceback."""
    try:
        yield
    except RagError as exc:
        raise gr.Error(exc.one_line(), print_exception=False) from None


def user_id(request: gr.Request | None) -> str:
    """Who is asking: the login name under auth, else this browser session."""
    if request is None:
        return ""
    if getattr(request, "username", None):
        return request.username
    return f"session-{(request.session_hash or '')[:12]}"


def _owner_filter(request: gr.Request | None) -> str | None:
    return request.username if request is not None and getattr(request, "username", None) else None


class ChatHandlers:
    def __init__(self, app: RagApp):
        self.app = app
        self.limits = QuestionLimits(app.settings.ui_questions_per_minute)

    # -- asking ------------------------------------------------------------------------
    def start_turn(self, question: str, msgs: list[dict], request: gr.Request):
        """Runs outside the queue: show the question and a waiting note at once, so a
        question that has to wait for the model says so. Takes the asker's one place in line
        (QuestionLimits), which `respond` gives back."""
        question = (question or "").strip()
        if not question:
            return gr.skip(), gr.skip(), gr.skip(), ""
        with user_errors():
            self.limits.admit(user_id(request))
        msgs = [
            *msgs,
            {"role": "user", "content": render.render_user(question)},
            {"role": "assistant", "content": render.render_waiting(WAITING)},
        ]
        return "", msgs, msgs, question

    def respond(
        self,
        question: str,
        msgs: list[dict],
        conv: str | None,
        turns: dict,
        mode: str,
        top_k: float,
        guides: list[str] | None,
        request: gr.Request,
    ):
        """Stream the verified sentences into the last chat message, then the final answer
        with its sources. Yields (chatbot, msgs, conv, turns, passages)."""
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        try:
            yield from self._respond(question, msgs, conv, turns, mode, top_k, guides, request)
        finally:
            self.limits.release(user_id(request))

    def _respond(self, question, msgs, conv, turns, mode, top_k, guides, request):
        turns = dict(turns)
        idx = len(msgs) - 1

        def show(content: str) -> list[dict]:
            nonlocal msgs  # a new list per update: each yielded state stays as it was
            msgs = [*msgs[:idx], {"role": "assistant", "content": content}]
            return msgs

        yield show(render.render_waiting(READING)), msgs, conv, turns, gr.skip()
        sentences: list[str] = []
        try:
            with user_errors():
                if not conv:
                    conv = self.app.history.new_conversation(
                        title=question[:80], user_id=_owner_filter(request) or ""
                    )
                stream = self.app.ask_stream(
                    question,
                    mode=mode or None,
                    top_k=int(top_k) if top_k else None,
                    sources=self._sources(guides),
                    conversation_id=conv,
                )
                for event in stream:
                    if event.kind == "sentence":
                        sentences.append(event.text)
                        yield show(render.render_partial(sentences)), msgs, conv, turns, gr.skip()
                    elif event.kind == "done":
                        data = event.answer.to_json()
                        turns[idx] = {"message_id": self._last_message_id(conv), "answer": data}
                        yield (
                            show(render.render_answer(data)),
                            msgs,
                            conv,
                            turns,
                            render.passages_html(data["passages"], data.get("expansion", "")),
                        )
        except Exception as exc:  # the chat must not be left saying "writing…"
            note = (
                exc.message
                if isinstance(exc, gr.Error)
                else "an unexpected error; see the server log"
            )
            yield show(render.render_error(note)), msgs, conv, turns, gr.skip()
            raise

    def _sources(self, guides: list[str] | None) -> list[str] | None:
        if not guides:
            return None
        known = set(self.app.sources())
        chosen = [g for g in guides if g in known]
        if not chosen:
            raise BadInput(
                "none of the chosen guides is indexed any more",
                "tick other guides, or none for all",
            )
        return None if set(chosen) == known else chosen

    def _last_message_id(self, conv: str) -> str:
        stored = self.app.history.messages(conv)
        last = stored[-1] if stored else None
        return last["id"] if last and last["role"] == "assistant" else f"ui-{time.time_ns()}"

    # -- feedback ----------------------------------------------------------------------
    def feedback(self, turns: dict, data: gr.LikeData, request: gr.Request) -> None:
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = turns.get(index)
        if record is None:
            gr.Warning("Only finished answers can be rated.")
            return
        if data.liked in (True, "Like"):
            rating = 1
        elif data.liked in (False, "Dislike"):
            rating = -1
        else:
            return  # a rating taken back
        answer = record["answer"]
        self.app.history.add_feedback(
            record["message_id"],
            rating,
            answer.get("question", ""),
            answer.get("answer", ""),
            answer.get("citations", []),
            user_id=user_id(request),
            quality=render.quality(answer),
        )
        gr.Info("Thanks: your rating is saved." if rating > 0 else "Thanks: noted as a bad answer.")

    # -- conversations -----------------------------------------------------------------
    def conversation_choices(self, request: gr.Request):
        found = self.app.history.conversations(limit=100, user_id=_owner_filter(request))
        choices = [
            (
                f"{(c['title'] or 'untitled')[:60]}  ·  "
                f"{time.strftime('%d %b %H:%M', time.localtime(c['updated_at']))}",
                c["id"],
            )
            for c in found
        ]
        return gr.update(choices=choices, value=None)

    def open_conversation(self, cid: str | None, request: gr.Request):
        """Reopen a stored conversation: its turns, re-rendered, and follow-ups continue it."""
        with user_errors():
            allowed = {
                c["id"]
                for c in self.app.history.conversations(limit=1000, user_id=_owner_filter(request))
            }
            if not cid or cid not in allowed:
                raise BadInput("choose a conversation from the list first")
            msgs, turns, last = [], {}, {}
            for m in self.app.history.messages(cid):
                if m["role"] == "user":
                    msgs.append({"role": "user", "content": render.render_user(m["content"])})
                elif m["role"] == "assistant":
                    data = m.get("payload") or {
                        "answer": m["content"],
                        "abstained": False,
                        "citations": [],
                    }
                    turns[len(msgs)] = {"message_id": m["id"], "answer": data}
                    msgs.append({"role": "assistant", "content": render.render_answer(data)})
                    last = data
            return (
                msgs,
                msgs,
                cid,
                turns,
                render.passages_html(last.get("passages", []), last.get("expansion", "")),
            )

    def new_conversation(self):
        return [], [], None, {}, render.passages_html([])

    # -- the API -----------------------------------------------------------------------
    def api_chat(self, message: str, request: gr.Request) -> str:
        """Answer one question from the documents. Returns the answer text with its [n]
        citation markers (the refusal sentence when the documents do not answer)."""
        with user_errors(), self._limited(request):
            return self.app.ask(message).answer

    def api_ask(
        self, question: str, request: gr.Request, mode: str = "hybrid", top_k: int = 5
    ) -> dict:
        """Answer one question; returns the `rag ask --json` object (answer, abstained,
        citations with their passages, retrieved passages, model, timings)."""
        with user_errors(), self._limited(request):
            return self.app.ask(question, mode=mode or None, top_k=int(top_k) or None).to_json()

    @contextmanager
    def _limited(self, request: gr.Request | None) -> Iterator[None]:
        """The API's calls count against the same per-user limits (checked when the call
        reaches the model's line: the API has no earlier moment)."""
        who = user_id(request)
        self.limits.admit(who)
        try:
            yield
        finally:
            self.limits.release(who)
