"""The baseline a newcomer would build with llama-index's defaults: SimpleDirectoryReader,
the default SentenceSplitter, a VectorStoreIndex over the same Qdrant, its default query
engine and the same LLM. Only the two adapters below are ours: they hand llama-index the same
embedding model and the same llama.cpp model (with its chat template) that `rag` uses, so the
comparison measures the pipeline, not the models."""

from __future__ import annotations

import re
import time
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr

COLLECTION = "llamaindex_baseline"
_DECLINES = re.compile(
    r"not (mentioned|provided|specified|stated|available)|does not (mention|contain|provide|say|specify)|"
    r"no information|cannot (answer|determine)|can't (answer|determine)|don't know|do not know|not possible to determine",
    re.I,
)


class EncoderEmbedding(BaseEmbedding):
    _encoder: Any = PrivateAttr()

    def __init__(self, encoder, **kw):
        super().__init__(model_name="all-MiniLM-L6-v2", **kw)
        self._encoder = encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_query(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class LocalChatLLM(CustomLLM):
    _llm: Any = PrivateAttr()
    max_tokens: int = 320

    def __init__(self, llm, max_tokens: int = 320, **kw):
        super().__init__(max_tokens=max_tokens, **kw)
        self._llm = llm

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self._llm.n_ctx, num_output=self.max_tokens, is_chat_model=True, model_name=self._llm.name)

    @llm_chat_callback()
    def chat(self, messages: list[ChatMessage], **kw: Any) -> ChatResponse:
        msgs = [{"role": "system" if m.role == MessageRole.SYSTEM else "assistant" if m.role == MessageRole.ASSISTANT else "user",
                 "content": m.content or ""} for m in messages]
        text = self._llm.complete(msgs, max_tokens=self.max_tokens, temperature=0.0)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponse:
        text = self._llm.complete([{"role": "user", "content": prompt}], max_tokens=self.max_tokens, temperature=0.0)
        return CompletionResponse(text=text)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponseGen:
        yield self.complete(prompt)


class LlamaIndexBaseline:
    """Built once over the app's corpus; `ask` returns a dict shaped like `rag ask --json`."""

    def __init__(self, app):
        from llama_index.core import Settings as LISettings
        from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
        from llama_index.vector_stores.qdrant import QdrantVectorStore

        client = app.store.client
        if client.collection_exists(COLLECTION):
            client.delete_collection(COLLECTION)
        LISettings.embed_model = EncoderEmbedding(app.dense())
        LISettings.llm = LocalChatLLM(app.llm(), app.settings.max_tokens)
        documents = SimpleDirectoryReader(str(app.settings.corpus), recursive=True).load_data()
        store = QdrantVectorStore(client=client, collection_name=COLLECTION)
        index = VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(vector_store=store))
        self.engine = index.as_query_engine()
        self.model = app.llm().name

    def ask(self, question: str) -> dict:
        started = time.perf_counter()
        response = self.engine.query(question)
        total = int((time.perf_counter() - started) * 1000)
        text = str(response).strip()
        nodes = response.source_nodes
        return {
            "question": question, "answer": text, "abstained": bool(_DECLINES.search(text)) or not text,
            # The default engine cites nothing: no citation can be checked.
            "citations": [],
            "passages": [{"rank": i, "source": n.node.metadata.get("file_name", ""), "text": n.node.get_content(), "score": n.score or 0.0}
                         for i, n in enumerate(nodes, 1)],
            "mode": "llama-index defaults", "model": self.model,
            "timings_ms": {"total": total},
        }
