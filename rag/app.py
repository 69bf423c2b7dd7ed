"""The composition root: builds each piece from the settings once per process and offers
`ingest`, `search`, `ask` and `chat`. The CLI, the UI and the eval suite use only this.

Heavy things (the embedding model, the LLM, the store) are built on first use, so
`rag --help` and a no-op re-ingest stay fast.

Over 300 lines, on purpose: it is the one composition root, each method a few lines of
wiring between the stages; splitting it would scatter what is built once and shared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import BadInput, CorruptIndex
from rag.question import clean_question, standalone_question
from rag.settings import Settings, check_top_k
from rag.types import Answer, Hit, IngestReport

if TYPE_CHECKING:  # importing answer at start-up would pull numpy into `rag --help`
    from rag.answer import Event


def model_presets() -> list[str]:
    """The names of the model presets a user can pick (nothing is loaded)."""
    from rag.weights import PRESETS

    return list(PRESETS)


def supported_extensions() -> tuple[str, ...]:
    """The file name endings the loaders read (".txt", ".docx", …), for the page's upload
    check; nothing is imported but the table."""
    from rag.loaders import SUPPORTED

    return tuple(SUPPORTED)


class RagApp:
    def __init__(
        self,
        settings: Settings,
        dense_encoder=None,
        llm=None,
        judge_llm=None,
        notify=None,
        sparse_encoder=None,
    ):
        """`dense_encoder`, `sparse_encoder`, `llm` and `judge_llm` let a caller share
        already-loaded models between apps (the test suite and the bench do; so could a
        server hosting several indexes). `notify(line)` hears what the app did on its own
        (indexing on first use, a migration) so that the CLI or the UI can say it."""
        self.settings = settings
        self.notify = notify or (lambda line: None)
        if dense_encoder is not None:
            self._dense = dense_encoder
        if sparse_encoder is not None:
            self._sparse = sparse_encoder
        if llm is not None:
            self._llm = llm
        if judge_llm is not None:
            self._judge_llm = judge_llm
        # One lock for the store and one for the LLM: the embedded Qdrant client and a
        # llama.cpp context are not safe to share between threads (the UI serves several).
        self._store_lock = threading.RLock()
        self._build_lock = threading.Lock()
        # One ingest at a time; it takes the store lock per store call only (LockedStore), so
        # questions keep being answered while it embeds.
        self._ingest_lock = threading.RLock()

    def derive(self, **overrides) -> RagApp:
        """An app with other settings over the same store and the already-loaded models (the
        embedded store admits one client per process). Its close() leaves them open."""
        settings = self.settings.with_overrides(**overrides)
        same_llm = settings.llm == self.settings.llm and "_llm" in self.__dict__
        child = RagApp(settings, dense_encoder=self.dense(), llm=self._llm if same_llm else None)
        if same_llm and "_judge_llm" in self.__dict__:
            child._judge_llm = self._judge_llm
        child.__dict__["store"] = self.store
        child._sparse = self.sparse()
        child._store_lock = self._store_lock
        child._ingest_lock = self._ingest_lock
        child._borrowed = True
        return child

    # -- pieces, built once -------------------------------------------------------------
    @cached_property
    def store(self):
        """Qdrant Edge in this process, or a Qdrant server when RAG_QDRANT_URL is set: the
        one place that chooses, so nothing below the app knows both backends."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.qdrant_url:
            from rag.store_server import ServerStore

            return ServerStore.connect(self.settings)
        from rag.store_edge import EdgeStore

        return EdgeStore(self.settings)

    def dense(self):
        with self._build_lock:
            if "_dense" not in self.__dict__:
                from rag.embedding import DenseEncoder

                self._dense = DenseEncoder(self.settings.embed_model, self.settings.embed_batch)
        return self._dense

    def sparse(self):
        with self._build_lock:
            if "_sparse" not in self.__dict__:
                from rag.embedding import SparseEncoder

                self._sparse = SparseEncoder(self.settings.bm25_avg_len)
        return self._sparse

    def llm(self):
        with self._build_lock:
            if "_llm" not in self.__dict__:
                s = self.settings
                if s.llm_url:
                    from rag.llm_remote import RemoteLLM

                    self._llm = RemoteLLM(s.llm_url, s.llm_url_model, s.llm_url_key, s.n_ctx)
                else:
                    from rag.llm import LocalLLM
                    from rag.weights import resolve_model

                    name, path = resolve_model(s.llm, s.models_dir)
                    self._llm = LocalLLM(path, name, n_ctx=s.n_ctx, threads=s.threads)
        return self._llm

    def judge_llm(self):
        """The same model on a llama.cpp context of its own, for the citation judge: its
        instructions stay cached there, and the answer's cached prompt is never evicted. The
        weights are memory-mapped, so the second context costs its KV cache, not a second
        copy of the model. With RAG_LLM_URL the judge still runs here, on the local model:
        it reads next-token scores, which the OpenAI protocol does not give."""
        with self._build_lock:
            if "_judge_llm" not in self.__dict__:
                from rag.llm import LocalLLM

                main = self.__dict__.get("_llm")
                if not isinstance(main, LocalLLM):
                    from rag.weights import resolve_model

                    name, path = resolve_model(self.settings.llm, self.settings.models_dir)
                else:
                    name, path = main.name, main.path
                self._judge_llm = LocalLLM(path, name, n_ctx=2048, threads=self.settings.threads)
        return self._judge_llm

    @cached_property
    def history(self):
        from rag.history import History

        return History(self.settings.db_path)

    @cached_property
    def accounts(self):
        from rag.accounts import Accounts

        return Accounts(self.settings.accounts_path)

    @cached_property
    def retriever(self):
        from rag.retrieve import Retriever

        return Retriever(self.store, self.dense, self.sparse)

    def close(self) -> None:
        if getattr(self, "_borrowed", False):
            return
        if "store" in self.__dict__:
            self.store.close()
        if "history" in self.__dict__:
            self.history.close()
        if "accounts" in self.__dict__:
            self.accounts.close()

    # -- operations -----------------------------------------------------------------------
    def ingest(
        self, paths: list[Path] | None = None, rebuild: bool = False, progress=None
    ) -> IngestReport:
        from rag.ingest import ingest

        paths = [Path(p) for p in (paths or [self.settings.corpus])]
        if rebuild and not self.settings.qdrant_url:
            try:
                _ = self.store
            except CorruptIndex:
                # A store too damaged to open is what --rebuild is for: start it afresh (a
                # store another process holds raises StoreLocked instead, and stays). The
                # conversation database lives elsewhere.
                from rag.store_edge import remove_damaged

                remove_damaged(self.settings)
        from rag.store import LockedStore

        with self._ingest_lock:
            with self._store_lock:
                carried = self._legacy_files()
            if carried:
                roots = [p.resolve() for p in paths]
                paths += [
                    f for f in carried if not any(f.resolve().is_relative_to(r) for r in roots)
                ]
            report = ingest(
                paths,
                self.settings,
                LockedStore(self.store, self._store_lock),
                self.dense,
                self.sparse,
                rebuild=rebuild,
                progress=progress,
            )
            if carried is not None:
                self._retire_legacy(report, len(carried))
            return report

    def _legacy_files(self) -> list[Path] | None:
        """The files of an index an older rag wrote, when this index is still new."""
        from rag.migrate import legacy_files

        if self.store.remote or (self.settings.index_path / self.settings.collection).exists():
            return None
        return legacy_files(self.settings)

    def _retire_legacy(self, report: IngestReport, count: int) -> None:
        from rag.migrate import migration_note, remove_legacy

        remove_legacy(self.settings)
        report.rebuilt = migration_note(count)

    def ensure_index(self, progress=None) -> IngestReport | None:
        """The first question on a fresh install ingests the default corpus by itself; on an
        install an older rag indexed, the files that index held."""
        with self._store_lock:
            if self.store.count() > 0:
                return None
        # Empty: wait for an ingest under way (a rebuild, the first one) rather than start one.
        with self._ingest_lock:
            with self._store_lock:
                if self.store.count() > 0:
                    return None
                if self.store.read_manifest():
                    raise CorruptIndex(
                        f"the index at {self.store.location} is empty "
                        "but its manifest lists indexed files",
                        "run: rag ingest --rebuild",
                    )
                carried = self._legacy_files()
            if carried:
                from rag.ingest import ingest
                from rag.store import LockedStore

                report = ingest(
                    carried,
                    self.settings,
                    LockedStore(self.store, self._store_lock),
                    self.dense,
                    self.sparse,
                    progress=progress,
                )
                self._retire_legacy(report, len(carried))
                self.notify(report.rebuilt)
                return report
            if not Path(self.settings.corpus).is_dir():
                raise BadInput(
                    f"the index is empty and the corpus folder {self.settings.corpus} "
                    "does not exist",
                    "run: rag ingest PATH, or set RAG_CORPUS",
                )
            return self.ingest([self.settings.corpus], progress=progress)

    def search(
        self,
        query: str,
        mode: str | None = None,
        top_k: int | None = None,
        sources: list[str] | None = None,
        kinds: list[str] | None = None,
        expansion: str | None = None,
    ) -> list[Hit]:
        """`expansion`: None writes one when the settings ask for it; "" searches without."""
        query = clean_question(query)
        if top_k is not None:
            check_top_k(top_k)  # an argument, not a setting: the API and the tools pass it on
        self.ensure_index()
        if expansion is None:
            expansion = self.expand(query, sources=sources, kinds=kinds)
        with self._store_lock:
            return self.retriever.search(
                query,
                mode or self.settings.mode,
                top_k or self.settings.top_k,
                sources=sources,
                kinds=kinds,
                expansion=expansion,
            )

    def expand(
        self, query: str, sources: list[str] | None = None, kinds: list[str] | None = None
    ) -> str:
        """The hypothetical answer searched with the question, or "" when expansion is off, not
        needed or of no use. Not needed: the question alone finds a close passage
        (expand_below); every expansion reorders the passages, and the small models' answers
        change with the order even when the evidence stays first (eval/README.md). Of no use:
        the assistant refuses an instruction to ignore its documents, and a question no passage
        is relevant to (min_relevance, judged on the question alone), without the model."""
        if not self.settings.expand_query:
            return ""
        from rag.expansion import ExpansionCache, cache_key, hypothetical_answer

        query = clean_question(query)
        with self._store_lock:
            best = self.retriever.search(
                query, "dense", 1, sources=sources, kinds=kinds, expansion=""
            )
        if (
            not best
            or not self.settings.min_relevance <= best[0].relevance < self.settings.expand_below
        ):
            return ""
        llm = self.llm()
        cache = ExpansionCache(self.settings.data_dir / "expansions.sqlite3")
        key = cache_key(llm.name, llm.path, query)
        cached = cache.get(key)
        if cached is not None:
            return cached
        text = hypothetical_answer(llm, query)
        cache.put(key, text)
        return text

    def ask_stream(
        self,
        question: str,
        mode: str | None = None,
        top_k: int | None = None,
        sources: list[str] | None = None,
        kinds: list[str] | None = None,
        conversation_id: str | None = None,
    ) -> Iterator[Event]:  # noqa: F821
        """Events: raw tokens, verified sentences as they settle, then the final Answer.
        With a conversation, a follow-up is first rewritten into a standalone question, and
        both turns are stored."""
        from rag.answer import Answerer

        question = clean_question(question)
        started = time.perf_counter()
        self.ensure_index()
        turns = self.history.messages(conversation_id) if conversation_id else []
        standalone = standalone_question(self.llm, question, turns) if turns else question
        mode = mode or self.settings.mode
        expand_started = time.perf_counter()
        expansion = self.expand(standalone, sources=sources, kinds=kinds)
        expand_ms = int((time.perf_counter() - expand_started) * 1000)
        hits = self.search(
            standalone, mode=mode, top_k=top_k, sources=sources, kinds=kinds, expansion=expansion
        )
        retrieve_ms = int((time.perf_counter() - started) * 1000) - expand_ms
        judge = (
            self.judge_llm()
            if self.settings.verify_citations and self.settings.judge_citations
            else None
        )
        answerer = Answerer(self.llm(), self.settings, self.dense, self.sparse, judge_llm=judge)
        for event in answerer.stream(
            question,
            hits,
            retrieve_ms,
            mode,
            standalone=standalone,
            started=started,
            expansion=expansion,
            expand_ms=expand_ms if expansion else None,
        ):
            if event.kind == "done" and conversation_id:
                self.history.add(conversation_id, "user", question)
                self.history.add(
                    conversation_id, "assistant", event.answer.answer, event.answer.to_json()
                )
            yield event

    def ask(self, question: str, **kw) -> Answer:
        for event in self.ask_stream(question, **kw):
            if event.kind == "done":
                return event.answer
        raise RuntimeError("the answer stream ended without an answer")

    def sources(self) -> dict[str, int]:
        with self._store_lock:
            return self.store.sources_by_name()
