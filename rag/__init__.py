"""rag: offline retrieval-augmented question answering with verified citations.

The pipeline, one module a stage: loaders → normalise → chunking → embedding → store →
ingest → retrieve → llm / prompt → answer. `rag.app` composes them; the CLI, the UI and the
eval suite are thin shells over it.
"""

__version__ = "0.1.0"
