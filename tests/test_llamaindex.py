"""rag inside a llama-index application: its retriever and query engine, with the real index,
embedder and default model. The llama-index side is used as its users use it: the
retriever's nodes, the engine's Response, and the engine behind an agent's QueryEngineTool."""

from __future__ import annotations

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import NodeWithScore

from rag.llamaindex import RagQueryEngine, RagRetriever

pytestmark = pytest.mark.slow


@pytest.fixture
def app(make_answer_app, default_llm, corpus_copy):
    return make_answer_app(default_llm, corpus=corpus_copy, expand_query=False)


def test_the_retriever_returns_rag_passages_as_nodes(app):
    nodes = RagRetriever(app, top_k=3).retrieve("Who introduced GANs?")
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) for n in nodes)
    document = (app.settings.corpus / nodes[0].node.metadata["source"].split("/", 1)[1]).read_text(
        encoding="utf-8"
    )
    assert nodes[0].node.get_content() in document  # the passage verbatim, not its context
    assert any("Goodfellow" in n.node.get_content() for n in nodes)
    assert nodes[0].score >= nodes[-1].score


def test_a_query_engine_from_rag_answers_with_source_nodes(app):
    engine = RagQueryEngine(app)
    response = engine.query("Who introduced GANs?")
    assert isinstance(response, Response)
    assert not response.metadata["abstained"]
    assert "Goodfellow" in str(response) and "[1]" in str(response)
    assert response.source_nodes, "a cited answer has its passages as source nodes"
    first = response.source_nodes[0].node
    assert first.metadata["n"] == 1 and "Goodfellow" in first.get_content()
    assert first.metadata["supports"]  # the answer sentences resting on it


def test_a_refusal_is_an_ordinary_response_without_sources(app):
    response = RagQueryEngine(app).query("What is the capital of Australia?")
    assert response.metadata["abstained"] and response.source_nodes == []


def test_rag_as_a_tool_of_a_llama_index_agent(app):
    """How a llama-index agent takes rag: its engine behind a QueryEngineTool, called as the
    agent calls it (no agent LLM needed for the call itself)."""
    from llama_index.core.tools import QueryEngineTool

    tool = QueryEngineTool.from_defaults(
        query_engine=RagQueryEngine(app),
        name="guides",
        description="Answers questions about the generative-AI guides, with citations.",
    )
    assert tool.metadata.name == "guides"
    output = tool.call("Who introduced GANs?")
    response = output.raw_output
    assert "Goodfellow" in output.content and response.source_nodes
    assert any("Goodfellow" in n.node.get_content() for n in response.source_nodes)
