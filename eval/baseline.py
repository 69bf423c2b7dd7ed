"""The baseline a careful llama-index user would build, given what rag is given: its
SimpleDirectoryReader and SentenceSplitter (passages of about rag's size), a VectorStoreIndex
over the same Qdrant with hybrid search through `QdrantVectorStore` (the same BM25 encoder, IDF
by Qdrant), the same number of passages in the prompt, and its CitationQueryEngine with an
instruction to say so when the sources do not answer. Only the adapters below are ours: they
hand llama-index the same embedding model, BM25 encoder and llama.cpp model (with its chat
template) that `rag` uses, so the comparison measures the pipeline, not the models. Its
citations are scored like rag's, by the gold evidence."""

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
DECLINE = "The sources do not answer this question."
_DECLINES = re.compile(
    r"sources do not answer|not (mentioned|provided|specified|stated|available)|"
    r"does not (mention|contain|provide|say|specify)|"
    r"no information|cannot (answer|determine)|can't (answer|determine)|don't know|do not know|"
    r"not possible to determine",
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
        return LLMMetadata(
            context_window=self._llm.n_ctx,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=self._llm.name,
        )

    @llm_chat_callback()
    def chat(self, messages: list[ChatMessage], **kw: Any) -> ChatResponse:
        msgs = [
            {
                "role": "system"
                if m.role == MessageRole.SYSTEM
                else "assistant"
                if m.role == MessageRole.ASSISTANT
                else "user",
                "content": m.content or "",
            }
            for m in messages
        ]
        text = self._llm.complete(msgs, max_tokens=self.max_tokens, temperature=0.0)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponse:
        text = self._llm.complete(
            [{"role": "user", "content": prompt}], max_tokens=self.max_tokens, temperature=0.0
        )
        return CompletionResponse(text=text)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kw: Any
    ) -> CompletionResponseGen:
        yield self.complete(prompt)


QA_TEMPLATE = (
    "Please provide an answer based solely on the provided sources. When referencing information "
    "from a source, cite the appropriate source(s) using their corresponding numbers. Every answer "
    "should include at least one source citation. Only cite a source when you are explicitly "
    "referencing it. If the sources do "
    f"not answer the query, reply exactly: {DECLINE} For example:\n"
    "Source 1:\nThe sky is red in the evening and blue in the morning.\n"
    "Source 2:\nWater is wet when the sky is red.\n"
    "Query: When is water wet?\n"
    "Answer: Water will be wet when the sky is red [2], which occurs in the evening [1].\n"
    "Now it's your turn. Below are several numbered sources of information:\n"
    "------\n{context_str}\n------\nQuery: {query_str}\nAnswer: "
)
# rag's prose passages are packed to about 120 embedding tokens; llama-index's splitter counts
# its own tokens, so a little more gives passages of about the same length.
CHUNK_TOKENS = 160


class LlamaIndexBaseline:
    """Built once over the app's corpus; `ask` returns a dict shaped like `rag ask --json`."""

    def __init__(self, app):
        from llama_index.core import (
            PromptTemplate,
            SimpleDirectoryReader,
            StorageContext,
            VectorStoreIndex,
        )
        from llama_index.core import Settings as LISettings
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.query_engine import CitationQueryEngine
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient, models

        # llama-index speaks qdrant-client: the app's server when it has one, else Qdrant's
        # in-memory local mode (the baseline's index is rebuilt for every run anyway).
        client = app.store.client if app.store.remote else QdrantClient(location=":memory:")
        self.client = client
        if client.collection_exists(COLLECTION):
            client.delete_collection(COLLECTION)
        LISettings.embed_model = EncoderEmbedding(app.dense())
        LISettings.llm = LocalChatLLM(app.llm(), app.settings.max_tokens)
        sparse = app.sparse()

        def sparse_doc(texts: list[str]):
            pairs = sparse.encode(texts)
            return [i for i, _ in pairs], [v for _, v in pairs]

        def sparse_query(texts: list[str]):
            pairs = [sparse.encode_query(t) for t in texts]
            return [i for i, _ in pairs], [v for _, v in pairs]

        documents = SimpleDirectoryReader(str(app.settings.corpus), recursive=True).load_data()
        store = QdrantVectorStore(
            client=client,
            collection_name=COLLECTION,
            enable_hybrid=True,
            sparse_doc_fn=sparse_doc,
            sparse_query_fn=sparse_query,
            sparse_config=models.SparseVectorParams(modifier=models.Modifier.IDF),
        )
        index = VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=store),
            transformations=[SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=20)],
        )
        k = app.settings.context_passages
        self.engine = CitationQueryEngine.from_args(
            index,
            retriever=index.as_retriever(
                vector_store_query_mode="hybrid",
                similarity_top_k=k,
                sparse_top_k=k * 2,
                hybrid_top_k=k,
            ),
            citation_chunk_size=4 * CHUNK_TOKENS,
            citation_qa_template=PromptTemplate(QA_TEMPLATE),
        )
        self.model = app.llm().name

    def ask(self, question: str) -> dict:
        started = time.perf_counter()
        response = self.engine.query(question)
        total = int((time.perf_counter() - started) * 1000)
        text = str(response).strip()
        nodes = response.source_nodes
        abstained = bool(_DECLINES.search(text)) or not text
        cited = sorted(
            {int(n) for n in re.findall(r"\[(\d+)\]", text) if 1 <= int(n) <= len(nodes)}
        )
        return {
            "question": question,
            "answer": text,
            "abstained": abstained,
            "citations": []
            if abstained
            else [
                {
                    "n": n,
                    "source": nodes[n - 1].node.metadata.get("file_name", ""),
                    "text": _source_text(nodes[n - 1]),
                }
                for n in cited
            ],
            "passages": [
                {
                    "rank": i,
                    "source": n.node.metadata.get("file_name", ""),
                    "text": _source_text(n),
                    "score": n.score or 0.0,
                }
                for i, n in enumerate(nodes, 1)
            ],
            "mode": "llama-index hybrid",
            "model": self.model,
            "timings_ms": {"total": total},
        }


def _source_text(node) -> str:
    # CitationQueryEngine prefixes each source with "Source N:\n" for the prompt.
    return re.sub(r"^Source \d+:\n", "", node.node.get_content())
