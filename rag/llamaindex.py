"""rag for llama-index users: a retriever and a query engine over a RagApp.

A llama-index application keeps its own composition (agents, routers, tools) and gets rag's
hybrid search and its checked answers as llama-index objects: passages as `NodeWithScore`
with their source, title and section in the metadata, and an answer as a `Response` whose
text carries the [n] markers and whose `source_nodes` are the cited passages, in marker
order. A refusal is an ordinary Response with `metadata["abstained"]` set and no sources.

    from rag.app import RagApp
    from rag.settings import load_settings
    from rag.llamaindex import RagQueryEngine

    engine = RagQueryEngine(RagApp(load_settings()))
    response = engine.query("Who introduced GANs?")
    print(response, [n.node.metadata["source"] for n in response.source_nodes])

It is a shell over the app layer, like the CLI and the page: nothing in rag imports it.
"""

from __future__ import annotations

import asyncio

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.app import RagApp
from rag.types import Hit


def hit_node(hit: Hit, **extra) -> NodeWithScore:
    """A rag passage as a llama-index node: the quoted text is the passage verbatim, what
    located it (source, title, section, span) rides in the metadata, kept out of what an LLM
    or embedder downstream would read as text."""
    metadata = {
        "source": hit.source,
        "title": hit.title,
        "section": hit.section,
        "kind": hit.kind,
        "span": [hit.start, hit.end],
        "rank": hit.rank,
        **extra,
    }
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        excluded_embed_metadata_keys=list(metadata),
        excluded_llm_metadata_keys=[k for k in metadata if k not in ("source", "section")],
    )
    return NodeWithScore(node=node, score=hit.score)


class RagRetriever(BaseRetriever):
    """rag's search (hybrid by default, with its query expansion) as a llama-index retriever."""

    def __init__(self, app: RagApp, top_k: int | None = None, mode: str | None = None):
        super().__init__()
        self.app, self.top_k, self.mode = app, top_k, mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.app.search(query_bundle.query_str, mode=self.mode, top_k=self.top_k)
        return [hit_node(h) for h in hits]


class RagQueryEngine(BaseQueryEngine):
    """rag's whole answer path (retrieve, answer with the local or RAG_LLM_URL model, check
    every cited sentence against its passage) as a llama-index query engine."""

    def __init__(self, app: RagApp, top_k: int | None = None, mode: str | None = None):
        super().__init__(callback_manager=CallbackManager([]))
        self.app, self.top_k, self.mode = app, top_k, mode

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self.app.ask(query_bundle.query_str, mode=self.mode, top_k=self.top_k)
        sources = [hit_node(c.hit, n=c.n, supports=list(c.supports)) for c in answer.citations]
        return Response(
            response=answer.answer,
            source_nodes=sources,
            metadata={
                "abstained": answer.abstained,
                "model": answer.model,
                "citations": [c.to_json() for c in answer.citations],
                "timings_ms": answer.timings_ms,
            },
        )

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        # The model runs on this machine's cores: off the event loop, not concurrently faster.
        return await asyncio.to_thread(self._query, query_bundle)

    def _get_prompt_modules(self) -> dict:
        return {}
