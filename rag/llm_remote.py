"""Generation by an OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, a hosted API)
when RAG_LLM_URL is set: the answer's words come from there, while retrieval, the prompt and
the citation check stay here. That is how a team grows past one model on one CPU.

It offers what the answer path asks of rag/llm.py's LocalLLM (`chat`, `complete_aside`,
`count_chat_tokens`, `name`, `n_ctx`); scoring next tokens, which only the opt-in judge needs,
stays with the local model. The official `openai` client speaks the protocol (streaming,
retries, error types), imported when the first request is made.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from rag.errors import BadInput, LLMUnavailable

# A chat message costs its text plus a few template tokens (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 8
# The server's tokenizer is not ours to call (the OpenAI protocol has no tokenize endpoint), so
# prompt budgets use an estimate that errs long: one token per three UTF-8 bytes. English runs
# near four bytes a token in the usual tokenizers, code and CJK near three, so the prompt is
# trimmed a little early rather than sent over the window.
BYTES_PER_TOKEN = 3


def api_base(url: str) -> str:
    """The base URL an OpenAI client wants, ending in /v1: users paste either the server's
    address (http://host:8080) or its API root (http://host:11434/v1)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(
            f"RAG_LLM_URL {url!r} is not an http(s) URL",
            "set it to the server's address, e.g. http://127.0.0.1:8080/v1",
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class RemoteLLM:
    """A chat model behind an OpenAI-compatible URL. Requests run concurrently; the server
    queues or batches them."""

    def __init__(self, url: str, model: str = "", api_key: str = "", n_ctx: int = 4096):
        self.base_url = api_base(url)
        self.path = self.base_url  # what the expansion cache keys a model's guesses by
        self.n_ctx = n_ctx
        self._api_key = api_key or "not-needed"  # local servers ignore it; the client wants one
        self._model = model
        self._client = None

    @property
    def name(self) -> str:
        """The model asked for: the configured one, else the first the server lists (a
        llama.cpp or llama-cpp-python server serves one model under whatever name it has)."""
        if not self._model:
            models = self._call(lambda c: c.models.list())
            ids = [m.id for m in getattr(models, "data", [])]
            if not ids:
                raise LLMUnavailable(
                    f"the LLM server at {self.base_url} lists no models",
                    "set RAG_LLM_URL_MODEL to the model's name",
                )
            self._model = ids[0]
        return self._model

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)

    def count_chat_tokens(self, messages: list[dict]) -> int:
        return sum(
            self.count_tokens(m.get("content") or "") + MESSAGE_OVERHEAD_TOKENS for m in messages
        )

    def chat(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Stream the reply as text pieces. Closing the iterator closes the HTTP stream, which
        tells the server to stop generating."""
        stream = self._call(
            lambda c: c.chat.completions.create(
                model=self.name,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or None,
                seed=0,
                stream=True,
            )
        )
        try:
            for chunk in self._guarded(stream):
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content
                if piece:
                    yield piece
        finally:
            stream.close()

    def complete(self, messages: list[dict], **kw) -> str:
        return "".join(self.chat(messages, **kw))

    def complete_aside(self, messages: list[dict], max_tokens: int = 64) -> str:
        """A short side generation; a remote server keeps no cache of ours to protect."""
        reply = self._call(
            lambda c: c.chat.completions.create(
                model=self.name,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.0,
                seed=0,
            )
        )
        return (reply.choices[0].message.content or "") if reply.choices else ""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- the protocol -----------------------------------------------------------------------

    def _connect(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=600.0, max_retries=2
            )
        return self._client

    def _call(self, request):
        import openai

        try:
            return request(self._connect())
        except openai.APIConnectionError:
            raise LLMUnavailable(
                f"cannot reach the LLM server at {self.base_url}",
                "start it, or unset RAG_LLM_URL to use the local model",
            ) from None
        except openai.AuthenticationError:
            raise LLMUnavailable(
                f"the LLM server at {self.base_url} refused the API key",
                "set RAG_LLM_URL_KEY to a key it accepts",
            ) from None
        except openai.NotFoundError:
            raise LLMUnavailable(
                f"the LLM server at {self.base_url} has no model {self._model!r} "
                "or no chat completions endpoint",
                "set RAG_LLM_URL_MODEL to a model it lists at /v1/models",
            ) from None
        except openai.BadRequestError as exc:
            if "context" in str(exc).lower():
                raise BadInput(
                    "the prompt does not fit the LLM server's context window",
                    "set RAG_N_CTX to the server's window, or use fewer context passages",
                ) from None
            raise LLMUnavailable(
                f"the LLM server at {self.base_url} rejected the request: {_short(exc)}"
            ) from None
        except openai.APIError as exc:
            raise LLMUnavailable(
                f"the LLM server at {self.base_url} failed: {_short(exc)}", "try again"
            ) from None

    def _guarded(self, stream):
        """A stream can fail half-way (the server stopped): the same errors as a request."""
        iterator = iter(stream)
        while True:
            try:
                chunk = self._call(lambda _c: next(iterator))
            except StopIteration:
                return
            yield chunk


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
