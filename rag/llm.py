"""The llama.cpp runtime: one loaded local chat model, streaming, token counts, scoring.

`llama_cpp` is imported when a model is loaded, so importing this module is instant. The KV
cache is saved and restored around side generations through llama-cpp-python internals, which
is why pyproject.toml pins its version. The weights themselves are rag/weights.py's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from rag.errors import BadInput, MissingModel
from rag.weights import PRESETS, repair_hint

GGUF_MAGIC = b"GGUF"


class LocalLLM:
    """One loaded llama.cpp model. Generation is serialised: one chat stream at a time."""

    def __init__(
        self, model_path: Path, name: str, n_ctx: int = 4096, threads: int = 0, seed: int = 0
    ):
        path = Path(model_path)
        self.name, self.n_ctx, self.path = name, n_ctx, path
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as exc:
            raise MissingModel(
                f"cannot read model file {path}: {exc.strerror}",
                f"check the path or use a preset ({', '.join(PRESETS)})",
            ) from None
        if magic != GGUF_MAGIC:
            raise MissingModel(f"{path} is not a valid GGUF model file", repair_hint(path))
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                seed=seed,
                verbose=False,
                n_threads=threads or os.cpu_count(),
            )
        except (ValueError, RuntimeError, OSError):
            # llama.cpp reports truncation or a bad header only as "failed to load".
            raise MissingModel(
                f"{path} is not a valid GGUF model file (llama.cpp cannot load it)",
                repair_hint(path),
            ) from None
        llm = self._llm
        eos, bos = llm.token_eos(), llm.token_bos()

        def text(token: int) -> str:
            if token < 0:
                return ""
            return llm.detokenize([token], special=True).decode("utf-8", "ignore")

        # The GGUF's own template (Qwen2.5, SmolLM2: ChatML with a default system turn). One
        # formatter serves both generation and count_chat_tokens so budgets match the real prompt.
        # Without a template, ChatML is the likeliest right guess for an instruct model.
        self._formatter = Jinja2ChatFormatter(
            template=llm.metadata.get("tokenizer.chat_template") or CHATML_CHAT_TEMPLATE,
            eos_token=text(eos),
            bos_token=text(bos),
            stop_token_ids=[eos] if eos >= 0 else None,
        )
        llm.chat_handler = self._formatter.to_chat_handler()
        self._lock = threading.Lock()

    @property
    def runtime(self):
        """The llama_cpp.Llama underneath, for the bench, which times llama.cpp bare
        (prefill, decode, threads) against what rag gets out of it."""
        return self._llm

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def format_prompt(self, messages: list[dict]) -> str:
        """The exact prompt text the model sees for `messages`, generation turn opened."""
        return self._formatter(messages=messages).prompt

    def count_chat_tokens(self, messages: list[dict]) -> int:
        # Same tokenisation as llama-cpp's chat handler: special tokens parsed, no extra BOS.
        prompt = self.format_prompt(messages).encode("utf-8")
        return len(self._llm.tokenize(prompt, add_bos=False, special=True))

    def chat(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Stream the reply as text pieces. The lock is taken on the first next() and held until
        the stream is exhausted or closed, because a llama context cannot run two generations."""
        with self._lock:
            stream = self._llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or [],
                stream=True,
            )
            try:
                with self._over_context("use fewer context passages or a shorter question"):
                    for chunk in stream:
                        piece = chunk["choices"][0]["delta"].get("content")
                        if piece:
                            yield piece
            finally:
                stream.close()  # stop llama.cpp before the next caller gets the lock

    def complete(self, messages: list[dict], **kw) -> str:
        return "".join(self.chat(messages, **kw))

    def token_ids(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def next_token_scores(self, prompt: str):
        """The model's scores (logits) for the token after `prompt`: one forward pass over what
        the cache does not already hold, no sampling. Read through llama-cpp-python's public
        logits_processor hook, which sees the full score vector before sampling."""
        seen = []

        def capture(_ids, scores):
            if not seen:
                seen.append(scores.copy())
            return scores

        with self._lock, self._over_context("use a shorter passage or question"):
            self._llm.create_completion(
                prompt=prompt, max_tokens=1, temperature=0.0, logits_processor=[capture]
            )
        return seen[0]

    def complete_aside(self, messages: list[dict], max_tokens: int = 64) -> str:
        """A short side generation (rewriting a follow-up, expanding a query) that leaves the
        KV cache as it found it. Without this the next answer would find only a few tokens of
        its system prompt cached and re-read all ~300 of them: about 2 s on 2 cores."""
        with self._lock:
            saved = self._save_context()
            # Read the aside from an empty cache: reusing whatever prefix the last call left
            # splits the prompt into other batches, which can round to another greedy token,
            # so the same question could get another expansion in `rag ask` than in an eval.
            self._llm.n_tokens = 0
            try:
                with self._over_context("use a shorter question"):
                    out = self._llm.create_chat_completion(
                        messages=messages, max_tokens=max_tokens, temperature=0.0
                    )
                return out["choices"][0]["message"].get("content") or ""
            finally:
                self._restore_context(saved)

    @contextlib.contextmanager
    def _over_context(self, fix: str):
        """llama-cpp-python reports a prompt over the window as a bare ValueError."""
        try:
            yield
        except ValueError as exc:
            if "context window" not in str(exc):
                raise
            raise BadInput(
                f"the prompt does not fit the {self.n_ctx}-token context window", fix
            ) from None

    def _save_context(self):
        # The KV cells and token ids only: Llama.save_state also copies the logits of every
        # cached token (~200 MB for a 150k vocabulary), which takes longer than re-reading.
        import llama_cpp

        llm = self._llm
        if llm.n_tokens == 0:
            return None
        size = llama_cpp.llama_state_get_size(llm.ctx)
        data = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llm.ctx, data, size)
        if written > size:
            return None
        # The seed too: each completion draws a new one, and with temperature > 0 the answer
        # would otherwise depend on whether an aside ran before it.
        return llm.input_ids[: llm.n_tokens].copy(), data, written, llm._seed

    def _restore_context(self, saved) -> None:
        import llama_cpp

        llm = self._llm
        if saved is None:
            llm.reset()  # a cold cache costs time, never a wrong answer
            return
        ids, data, written, seed = saved
        llm.set_seed(seed)
        if llama_cpp.llama_state_set_data(llm.ctx, data, written) != written:
            llm.reset()
            return
        llm.input_ids[: len(ids)] = ids
        llm.n_tokens = len(ids)
        llm._requires_eval = True

    def close(self) -> None:
        """Free the model; waits for a running generation (never call it with a stream open)."""
        with self._lock:
            self._llm.close()
