"""POST /v1/chat/completions for OpenAI clients, on the API `rag serve` offers: the answer
with its [n] markers as the message, the `rag ask --json` object beside it."""

from __future__ import annotations

import json
import secrets
import time

from rag.errors import RagError, error_body


def _last_user_message(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: the text ones, joined
                content = " ".join(
                    p.get("text", "")
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            return content if isinstance(content, str) else ""
    return ""


def openai_completion(handler, api, body: dict) -> None:
    """The last user message answered from the documents (earlier turns are not used).
    `choices[0].message.content` is the answer with its [n] markers; the extra field `rag`
    holds the `rag ask --json` object (citations, passages, timings). With "stream": true,
    server-sent events: one chunk per verified sentence, the last one carrying `rag`."""
    question = _last_user_message(body)
    cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        data = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": api.app.settings.llm,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(data).encode("utf-8") + b"\n\n"

    if not body.get("stream"):
        data = api.run("ask", {"question": question}, lambda event: None)
        return handler.send_json(
            200,
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": data["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": data["answer"]},
                        "finish_reason": "stop",
                    }
                ],
                "rag": data,
            },
        )
    started = False

    def begin() -> None:
        nonlocal started
        if not started:
            started = True
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "no-store")
            handler.end_headers()
            handler.wfile.write(chunk({"role": "assistant", "content": ""}))

    def on_event(event: dict) -> None:
        if event.get("event") == "sentence":
            begin()
            handler.wfile.write(chunk({"content": event["text"] + " "}))
            handler.wfile.flush()

    try:
        data = api.run("ask", {"question": question}, on_event)
    except RagError as exc:
        if not started:
            raise
        handler.wfile.write(b"data: " + json.dumps(error_body(exc)).encode("utf-8") + b"\n\n")
        return
    begin()
    handler.wfile.write(chunk({}, "stop", rag=data) + b"data: [DONE]\n\n")
    handler.wfile.flush()
