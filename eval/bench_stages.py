"""The measuring half of `python -m rag.eval.bench`: each stage runs in a fresh process
(`python -m rag.eval.bench_stages STAGE PARAMS.json OUT.json`) so its peak RSS is its own, and
writes one JSON object. Nothing here writes outside the bench's temporary folder.

Stages
  prep           chunk the Python docs: the embed/ingest corpus (copied) and the point pool
  ingest         one process, one loaded encoder: DenseEncoder.encode bare on that corpus
                 (grouped as ingest groups it), RagApp.ingest of the same corpus into a fresh
                 data dir (timed per step), the bare embedding again; then the 3 guides: bare,
                 fresh ingest, unchanged again (warm and cold, in process)
  answers        the LLM bare (prefill, decode, optionally a threads probe), then gold
                 questions through RagApp.ask, and a check of llama.cpp's KV-cache reuse
  torch_threads  query/batch encoding at torch's default threads and at 1 (run under two
                 OMP_WAIT_POLICY settings by the caller)
  store          one index backend at N points (`old`: qdrant-client local mode, what rag used
                 before Qdrant Edge; `edge`: rag's embedded store): build, open, query
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import statistics
import sys
import time
from pathlib import Path

from rag.eval.metrics import percentile

DIM = 384  # all-MiniLM-L6-v2


# -- small helpers -------------------------------------------------------------------------
def proc_status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field == "VmHWM":
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return 0.0


def dist(values: list[float], digits: int = 2) -> dict:
    return {
        "n": len(values),
        "p50": _r(percentile(values, 50), digits),
        "p95": _r(percentile(values, 95), digits),
        "mean": _r(statistics.fmean(values), digits) if values else None,
        "max": _r(max(values), digits) if values else None,
    }


def _r(x, digits=2):
    return None if x is None else round(float(x), digits)


def settings_for(data_dir: Path, **kw):
    """Defaults only (RAG_* of the calling shell ignored), with our data dir."""
    from rag.settings import load_settings

    return load_settings(env={}, data_dir=data_dir, **kw)


class Timers:
    """Accumulated seconds per label, for wrapping the pieces of ingest."""

    def __init__(self):
        self.s: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def wrap(self, label: str, fn):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.s[label] = self.s.get(label, 0.0) + time.perf_counter() - t
                self.n[label] = self.n.get(label, 0) + 1

        return timed

    def report(self) -> dict:
        return {k: round(v, 3) for k, v in sorted(self.s.items(), key=lambda kv: -kv[1])}


def chunk_files(root: Path, settings):
    """(file source, passages) per supported file under root, in ingest's order."""
    from rag.chunking import chunk_document
    from rag.loaders import SkipFile, find_files, load
    from rag.tokens import token_counter

    files, _ = find_files([root])
    for found in files:
        try:
            doc = load(found)
        except SkipFile:
            continue
        yield (
            found,
            chunk_document(
                doc,
                settings.chunk_tokens,
                settings.chunk_overlap,
                token_counter(settings.embed_model),
            ),
        )


def ingest_groups(root: Path, settings) -> list[list[tuple[str, str]]]:
    """The unique passages of a folder as ingest embeds them: in rag.ingest's batches, each
    passage embedded once (dedup key) in the first batch that holds it. Each group is a list
    of (dedup key, search_text)."""
    from rag.ingest import batches
    from rag.normalise import dedup_key

    seen: set[str] = set()
    groups = []
    for batch in batches(chunk_files(root, settings), lambda item: len(item[1])):
        group = []
        for _found, passages in batch:
            for p in passages:
                k = dedup_key(p.text)
                if k not in seen:
                    seen.add(k)
                    group.append((k, p.search_text))
        groups.append(group)
    return groups


def pool_points(pool_path: Path, vectors_path: Path, n: int, seed: int = 7):
    """The first n points of the pool: (id, dense, (idx, val), payload, real, copied). Passages
    embedded by the embed stage keep their real vector; the others reuse one of those vectors,
    slightly perturbed and renormalised (their sparse vector and payload are their own, real).
    Past the end of the pool, points are copies of pool points under new ids (copied=True):
    the docs hold fewer distinct passages than the largest size."""
    import uuid

    import numpy as np

    with open(pool_path, "rb") as f:
        pool = pickle.load(f)
    data = np.load(vectors_path)
    keys = [str(k) for k in data["keys"]]
    vecs = data["vectors"].astype(np.float32)
    index = {k: i for i, k in enumerate(keys)}
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pid, key, sparse, payload = pool[i % len(pool)]
        copied = i >= len(pool)
        j = None if copied else index.get(key)
        if j is not None:
            out.append((pid, vecs[j], sparse, payload, True, False))
            continue
        v = vecs[i % len(vecs)] + rng.normal(0.0, 0.03, DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        if copied:
            pid = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-copy-{i}"))
        out.append((pid, v, sparse, payload, False, copied))
    return out


def gold_questions(n: int | None = None) -> list[str]:
    from rag.eval.gold import DEFAULT_GOLD, load_gold

    qs = [q.question for q in load_gold(DEFAULT_GOLD)]
    return qs[:n] if n else qs


# -- stages ----------------------------------------------------------------------------------
def stage_prep(p: dict) -> dict:
    """Pick the HTML files of the embed/ingest corpus, copy them (and the guides) into the
    bench folder, and chunk the docs into the point pool used for the retrieval sizes."""
    from rag.chunking import chunk_document
    from rag.embedding import SparseEncoder
    from rag.ingest import payload_for
    from rag.loaders import FoundFile, SkipFile, find_files, load
    from rag.normalise import dedup_key
    from rag.settings import PROJECT_ROOT
    from rag.store import point_id
    from rag.tokens import token_counter

    root = Path(p["root"])
    html_root = Path(p["pydoc_root"])
    settings = settings_for(root / "unused")
    t0 = time.perf_counter()
    files, _ = find_files([html_root])
    html = [f for f in files if f.path.suffix == ".html"]
    others = [f for f in files if f.path.suffix != ".html"]

    def chunks(found: FoundFile):
        try:
            doc = load(found)
        except SkipFile:
            return []
        return chunk_document(
            doc, settings.chunk_tokens, settings.chunk_overlap, token_counter(settings.embed_model)
        )

    # The embed/ingest corpus: whole HTML files, in order, until the target count of passages.
    corpus_dir = root / "pydoc"
    chosen, n_chosen, seen = [], 0, set()
    cache: dict[str, list] = {}
    for f in html:
        if n_chosen >= p["embed_target"]:
            break
        ps = chunks(f)
        cache[f.source] = ps
        new = {dedup_key(x.text) for x in ps} - seen
        if not new:
            continue
        seen |= new
        n_chosen += len(new)
        chosen.append(f)
        dest = corpus_dir / f.source
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.path, dest)
    guides = root / "guides" / "corpus"
    shutil.copytree(PROJECT_ROOT / "corpus", guides)

    # The pool: the corpus's passages first, then the other HTML pages, then the reST sources.
    sparse = SparseEncoder(settings.bm25_avg_len)
    pool, keys = [], set()
    order = chosen + [f for f in html if f not in chosen] + others
    files_used = 0
    for f in order:
        if len(pool) >= p["pool_size"]:
            break
        ps = cache.pop(f.source, None)
        if ps is None:
            ps = chunks(f)
        files_used += 1
        fresh = []
        for x in ps:
            k = dedup_key(x.text)
            if k not in keys:
                keys.add(k)
                fresh.append((k, x))
        vecs = sparse.encode([x.search_text for _, x in fresh])
        for (k, x), sv in zip(fresh, vecs):
            pool.append((point_id(k), k, sv, payload_for(x, f.source)))
    pool = pool[: p["pool_size"]]
    with open(root / "pool.pkl", "wb") as fh:
        pickle.dump(pool, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return {
        "corpus_dir": str(corpus_dir),
        "guides_dir": str(guides),
        "corpus_files": len(chosen),
        "corpus_passages": n_chosen,
        "pool_path": str(root / "pool.pkl"),
        "pool_points": len(pool),
        "pool_files": files_used,
        "docs_files_available": {"html": len(html), "other": len(others)},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def bare_embed(enc, groups) -> tuple[list[str], object, float]:
    """DenseEncoder.encode on each ingest-like group; (keys, vectors, seconds)."""
    import numpy as np

    keys, vecs, t = [], [], time.perf_counter()
    for g in groups:
        vecs.append(enc.encode([text for _, text in g]))
        keys.extend(k for k, _ in g)
    out = np.concatenate(vecs) if vecs else np.zeros((0, DIM), np.float32)
    return keys, out, time.perf_counter() - t


def embed_info(enc, groups, settings) -> dict:
    from rag.embedding import SparseEncoder

    texts = [text for g in groups for _, text in g]
    sp = SparseEncoder(settings.bm25_avg_len)
    t = time.perf_counter()
    sp.encode(texts)
    sparse_s = time.perf_counter() - t
    tok = enc.model.tokenizer
    lens = [len(tok(x, truncation=False)["input_ids"]) for x in texts[:400]]
    return {
        "batch_size": settings.embed_batch,
        "max_seq_length": int(enc.model.max_seq_length),
        "wordpiece_tokens": {
            "mean": round(statistics.fmean(lens), 1),
            "p95": percentile(lens, 95),
            "over_max_seq": round(
                sum(x > enc.model.max_seq_length for x in lens) / max(1, len(lens)), 3
            ),
        },
        "sparse_chunks_s": round(len(texts) / sparse_s, 1) if sparse_s else None,
        "torch_threads": __import__("torch").get_num_threads(),
    }


def _instrumented_app(settings):
    from rag.app import RagApp

    app = RagApp(settings)
    t = time.perf_counter()
    dense, _sparse = app.dense(), app.sparse()
    load_s = time.perf_counter() - t
    dense.encode(["warm up the encoder", "and a second text"])  # the first call pays lazy init
    return app, load_s


def _instrument(app, timers: Timers) -> None:
    """Time each step of ingest by wrapping what it calls (this process only)."""
    import rag.ingest as ingest_mod

    dense, sparse = app.dense(), app.sparse()
    dense.encode = timers.wrap("dense_encode", dense.encode)
    sparse.encode = timers.wrap("sparse_encode", sparse.encode)
    store = app.store
    for name in (
        "upsert",
        "get",
        "write_manifest_entry",
        "set_payloads",
        "read_manifest",
        "delete",
        "read_config",
        "drop",
        "ensure_collections",
    ):
        setattr(store, name, timers.wrap("store_" + name, getattr(store, name)))
    ingest_mod.load = timers.wrap("load_file", ingest_mod.load)
    ingest_mod.chunk_document = timers.wrap("chunk", ingest_mod.chunk_document)


def _ingest_once(app, path: Path, timers: Timers | None) -> dict:
    if timers:
        timers.s.clear()
        timers.n.clear()
    t = time.perf_counter()
    report = app.ingest([path])
    wall = time.perf_counter() - t
    out = {
        "wall_s": round(wall, 3),
        "files": report.files,
        "passages": report.passages,
        "added": report.added,
        "unchanged_files": report.unchanged_files,
        "duplicates": report.duplicates,
        "skipped": len(report.skipped),
    }
    if report.added and wall:
        out["ingest_chunks_s"] = round(report.added / wall, 2)
    if timers:
        out["breakdown_s"] = timers.report()
        out["breakdown_s"]["other"] = round(wall - sum(timers.s.values()), 3)
    return out


def stage_vectors(p: dict) -> dict:
    """Only the real dense vectors the retrieval sizes start from (what stage_ingest also
    writes), for a run of the stores alone: the embed corpus's passages, embedded bare."""
    import numpy as np

    from rag.embedding import DenseEncoder

    root = Path(p["root"])
    settings = settings_for(root / "unused")
    dense = DenseEncoder(settings.embed_model, settings.embed_batch)
    keys, vecs, seconds = bare_embed(dense, ingest_groups(Path(p["corpus_dir"]), settings))
    np.savez(root / "vectors.npz", keys=np.array(keys), vectors=vecs)
    return {"passages": len(keys), "embed_s": round(seconds, 2)}


def stage_ingest(p: dict) -> dict:
    """In one process, with one loaded encoder: the bare embedding of the Python-docs corpus,
    its full ingest into a fresh data dir (timed per step), the bare embedding again (the
    mean of the two brackets the ingest against load drift), then the 3 guides: bare, fresh
    ingest, unchanged again in the same app (warm) and in a new RagApp (cold)."""
    import numpy as np

    from rag.app import RagApp

    root = Path(p["root"])
    timers = Timers()
    settings = settings_for(Path(p["pydoc_data"]))
    app, load_s = _instrumented_app(settings)
    dense, sparse = app.dense(), app.sparse()
    groups = ingest_groups(Path(p["corpus_dir"]), settings)
    guide_groups = ingest_groups(Path(p["guides_dir"]), settings)
    n = sum(len(g) for g in groups)
    res = {
        "models_load_s": round(load_s, 2),
        "rss_after_models_mb": round(proc_status_mb("VmRSS"), 1),
    }
    res["embed_info"] = embed_info(dense, groups, settings)

    keys, vecs, before_s = bare_embed(dense, groups)
    _instrument(app, timers)
    res["pydoc"] = _ingest_once(app, Path(p["corpus_dir"]), timers)
    _keys, _vecs, after_s = bare_embed(_Bare(dense), groups)
    res["embed"] = {
        "passages": n,
        "batches": len(groups),
        "before_ingest_s": round(before_s, 2),
        "after_ingest_s": round(after_s, 2),
        "embed_s": round((before_s + after_s) / 2, 2),
    }
    res["embed"]["embed_chunks_s"] = round(n / res["embed"]["embed_s"], 2)
    t = time.perf_counter()
    res["pydoc_unchanged"] = _ingest_once(app, Path(p["corpus_dir"]), None)
    res["pydoc_unchanged"]["wall_s"] = round(time.perf_counter() - t, 3)
    app.close()

    gkeys, gvecs, g_s = bare_embed(_Bare(dense), guide_groups)
    res["guides_embed"] = {
        "passages": len(gkeys),
        "embed_s": round(g_s, 2),
        "embed_chunks_s": round(len(gkeys) / g_s, 2),
    }
    np.savez(
        root / "vectors.npz", keys=np.array(keys + gkeys), vectors=np.concatenate([vecs, gvecs])
    )

    gsettings = settings_for(Path(p["guides_data"]), corpus=Path(p["guides_dir"]))
    gapp = RagApp(gsettings, dense_encoder=dense, sparse_encoder=sparse)
    res["guides"] = _ingest_once(gapp, Path(p["guides_dir"]), None)
    res["guides_unchanged_warm"] = _ingest_once(gapp, Path(p["guides_dir"]), None)
    gapp.close()
    t = time.perf_counter()
    cold = RagApp(gsettings)  # a new app: opens the store and reads the manifest again
    r = cold.ingest([Path(p["guides_dir"])])
    res["guides_unchanged_cold"] = {
        "wall_s": round(time.perf_counter() - t, 3),
        "added": r.added,
        "unchanged_files": r.unchanged_files,
    }
    cold.close()
    return res


class _Bare:
    """The encoder with its un-instrumented encode (the ingest timers wrap the instance's)."""

    def __init__(self, enc):
        self.enc = enc

    def encode(self, texts):
        return type(self.enc).encode(self.enc, texts)


def stage_answers(p: dict) -> dict:
    """The LLM bare, then the gold questions through RagApp.ask, then KV-cache reuse checks."""
    from rag.app import RagApp

    settings = settings_for(Path(p["guides_data"]), corpus=Path(p["guides_dir"]), llm=p["model"])
    app = RagApp(settings)
    app.search(
        "warm up the retriever", expansion=""
    )  # loads the embedding model and opens the store, not the LLM
    t = time.perf_counter()
    llm = app.llm()
    llm_load_s = time.perf_counter() - t
    L = llm.runtime
    res: dict = {
        "llm_load_s": round(llm_load_s, 2),
        "model": llm.name,
        "n_threads": L.n_threads,
        "n_batch": L.n_batch,
        "n_ctx": L.n_ctx(),
    }

    # -- bare prefill: distinct ~500-token prompts, each on an emptied cache --------------
    text = "\n\n".join(
        f.read_text(encoding="utf-8", errors="ignore")
        for f in sorted(Path(p["guides_dir"]).glob("*"))
        if f.is_file()
    )
    toks = L.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    n = p["prefill_tokens"]
    rates = []
    for rep in range(p["prefill_reps"]):
        start = (rep * (n + 97)) % max(1, len(toks) - n)
        window = toks[start : start + n]
        L.reset()
        t = time.perf_counter()
        L.eval(window)
        rates.append(len(window) / (time.perf_counter() - t))
    # -- bare decode: greedy, one token at a time (EOS ignored: the cost is the same) ------
    t = time.perf_counter()
    for _ in range(p["decode_tokens"]):
        tok = L.sample(temp=0.0)
        L.eval([tok])
    decode_s = time.perf_counter() - t
    res["prefill_tok_s"] = round(statistics.median(rates), 2)
    res["prefill_runs_tok_s"] = [round(r, 2) for r in rates]
    res["prefill_tokens"] = n
    res["decode_tok_s"] = round(p["decode_tokens"] / decode_s, 2)
    res["decode_tokens"] = p["decode_tokens"]
    if p.get("threads_probe"):
        res["threads_probe"] = _llm_threads_probe(L, toks, res["n_threads"])
    L.reset()

    # Record, for every generation, how much of its prompt the KV cache already held.
    calls: list[dict] = []
    orig_chat = llm.chat

    def chat(messages, **kw):
        prompt = L.tokenize(
            llm.format_prompt(messages).encode("utf-8"), add_bos=False, special=True
        )
        cached = list(L.input_ids[: L.n_tokens])
        common = 0
        for a, b in zip(cached, prompt):
            if a != b:
                break
            common += 1
        calls.append({"prompt_tokens": len(prompt), "cached_prefix": min(common, len(prompt) - 1)})
        yield from orig_chat(messages, **kw)

    llm.chat = chat
    from rag.prompt import SYSTEM_PROMPT

    sys_tokens = llm.count_chat_tokens([{"role": "system", "content": SYSTEM_PROMPT}])
    res["system_prompt_tokens"] = sys_tokens

    rows = []
    for i, q in enumerate(gold_questions(p["questions"])):
        before = len(calls)
        t = time.perf_counter()
        try:
            ans = app.ask(q)
        except Exception as exc:  # a failed question is reported, not fatal
            rows.append({"i": i, "question": q, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        wall = time.perf_counter() - t
        c = ans.checks or {}
        row = {
            "i": i,
            "question": q[:80],
            "wall_s": round(wall, 3),
            "first_token_s": ans.timings_ms.get("first_token", 0) / 1000,
            "total_s": ans.timings_ms.get("total", 0) / 1000,
            "retrieve_s": ans.timings_ms.get("retrieve", 0) / 1000,
            "abstained": ans.abstained,
            "refused_before_llm": "refused" in c and "prompt_tokens" not in c,
            "prompt_tokens": c.get("prompt_tokens"),
            "answer_tokens": llm.count_tokens(ans.raw_answer) if ans.raw_answer else 0,
        }
        if len(calls) > before:
            row["cached_prefix"] = calls[-1]["cached_prefix"]
            row["llm_calls"] = len(calls) - before
        rows.append(row)
    res["per_question"] = rows

    # -- KV-cache reuse: the same prompt cold, after another question, and asked again -----
    # (light: only asked again, right after itself; the question loop shows the rest)
    llm_rows = [r for r in rows if r.get("prompt_tokens")]
    questions = gold_questions(p["questions"])
    checks = []
    for target in llm_rows[: p["kv_checks"]]:
        q = questions[target["i"]]
        entry = {"i": target["i"], "prompt_tokens": target["prompt_tokens"]}
        if not p.get("kv_light"):
            other = next((r for r in llm_rows if r["i"] != target["i"]), None)
            L.reset()
            entry["cold"] = _ttft(app, q, calls)
            if other is not None:
                _ttft(app, questions[other["i"]], calls)
                entry["after_other_question"] = _ttft(app, q, calls)
        else:
            _ttft(app, q, calls)
        entry["repeated"] = _ttft(app, q, calls)
        checks.append(entry)
    res["kv_checks"] = checks
    app.close()
    return res


def _llm_threads_probe(L, toks, default_threads: int) -> dict:
    """Bare prefill (300 tokens) and decode (32 tokens) with (decode, batch) threads set to
    rag's choice (all cores), llama-cpp-python's own default (half the cores for decode) and
    1/1, interleaved twice so load drift hits each alike."""
    import llama_cpp

    cores = os.cpu_count() or 1
    half = max(cores // 2, 1)
    configs = {
        f"rag_default_{default_threads}/{default_threads}": (default_threads, default_threads),
        f"llama_cpp_default_{half}/{cores}": (half, cores),
        "single_1/1": (1, 1),
    }
    runs: dict[str, list] = {k: [] for k in configs}
    for _ in range(2):
        for name, (nt, nb) in configs.items():
            llama_cpp.llama_set_n_threads(L.ctx, nt, nb)
            L.reset()
            window = toks[len(runs[name]) * 331 : len(runs[name]) * 331 + 300]
            t = time.perf_counter()
            L.eval(window)
            pf = len(window) / (time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(32):
                L.eval([L.sample(temp=0.0)])
            runs[name].append((pf, 32 / (time.perf_counter() - t)))
    llama_cpp.llama_set_n_threads(L.ctx, default_threads, default_threads)
    return {
        k: {
            "prefill_tok_s": [round(a, 1) for a, _ in v],
            "decode_tok_s": [round(b, 2) for _, b in v],
        }
        for k, v in runs.items()
    }


def stage_torch_threads(p: dict) -> dict:
    """Query encoding and batch embedding with torch at 1 thread and at its default, in a
    process whose OMP_WAIT_POLICY the caller sets (spinning threads suffer most when other
    processes hold the cores)."""
    import pickle as _p

    import torch

    from rag.embedding import DenseEncoder

    settings = settings_for(Path("/nonexistent"))
    enc = DenseEncoder(settings.embed_model, settings.embed_batch)
    with open(p["pool_path"], "rb") as fh:
        pool = _p.load(fh)[:96]
    texts = [f"{x[3]['context']}\n{x[3]['text']}" for x in pool]
    qs = gold_questions(12)
    default = torch.get_num_threads()
    out = {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "default_threads": default,
    }
    for _rep in range(2):
        for th in (default, 1):
            torch.set_num_threads(th)
            enc.encode_query("warm up")
            t = time.perf_counter()
            for q in qs:
                enc.encode_query(q)
            qms = (time.perf_counter() - t) / len(qs) * 1000
            t = time.perf_counter()
            enc.encode(texts)
            rate = len(texts) / (time.perf_counter() - t)
            d = out.setdefault(f"threads_{th}", {"query_ms": [], "batch_passages_s": []})
            d["query_ms"].append(round(qms, 1))
            d["batch_passages_s"].append(round(rate, 1))
    return out


def _ttft(app, question: str, calls: list[dict]) -> dict:
    """Time to the first generated token, generation stopped right there."""
    t = time.perf_counter()
    stream = app.ask_stream(question)
    first = None
    try:
        for ev in stream:
            if ev.kind == "token":
                first = time.perf_counter() - t
                break
    finally:
        stream.close()
    return {
        "ttft_s": round(first, 3) if first is not None else None,
        "cached_prefix": calls[-1]["cached_prefix"] if calls else None,
    }


def _queries(n: int, cache: Path | None = None):
    """Query texts and their encodings (dense, sparse), so store timings exclude encoding.
    Encoded once per bench run (cached in the work dir); encode times come from that run."""
    from rag.embedding import DenseEncoder, SparseEncoder

    settings = settings_for(Path("/nonexistent"))
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            texts, encoded, enc_ms = pickle.load(fh)
        return None, None, texts, encoded, enc_ms
    dense = DenseEncoder(settings.embed_model, settings.embed_batch)
    sparse = SparseEncoder(settings.bm25_avg_len)
    texts = gold_questions(n)
    dense.encode_query("warm up")
    enc_ms = []
    encoded = []
    for q in texts:
        t = time.perf_counter()
        dv = dense.encode_query(q)
        enc_ms.append((time.perf_counter() - t) * 1000)
        encoded.append((dv.tolist(), sparse.encode_query(q)))
    if cache is not None:
        with open(cache, "wb") as fh:
            pickle.dump((texts, encoded, enc_ms), fh)
    return dense, sparse, texts, encoded, enc_ms


def _open_backend(backend: str, settings):
    """The store under test: `old` is what rag used before Qdrant Edge, qdrant-client's local
    mode (through ServerStore, which speaks to it as to a server, with Qdrant's own scoring);
    `edge` is rag's embedded store."""
    if backend == "edge":
        from rag.store_edge import EdgeStore

        return EdgeStore(settings)
    from qdrant_client import QdrantClient

    from rag.store_server import ServerStore

    return ServerStore(
        QdrantClient(path=str(settings.legacy_index_path)), settings.collection, "local mode"
    )


def _exact_top5(points, encoded) -> list[set[str]]:
    """The true top 5 by cosine for each query, by a full scan in numpy."""
    import numpy as np

    ids = [x[0] for x in points]
    matrix = np.stack([x[1] for x in points]).astype(np.float32)
    out = []
    for dv, _ in encoded:
        scores = matrix @ np.asarray(dv, dtype=np.float32)
        out.append({ids[i] for i in np.argsort(-scores)[:5]})
    return out


def stage_store(p: dict) -> dict:
    """One backend at N points: build through the store's upsert (and, for Edge, the optimise
    that ingest runs), reopen in a fresh object, then the same queries through Retriever.search
    (query encoding included) and through the store call alone."""
    import gc

    from rag.embedding import DenseEncoder, SparseEncoder
    from rag.ingest import batches, index_config
    from rag.retrieve import MODES, Retriever

    backend, n = p["backend"], p["size"]
    data = Path(p["data_dir"])
    settings = settings_for(data)
    points = pool_points(Path(p["pool_path"]), Path(p["vectors_path"]), n)
    res = {
        "backend": backend,
        "points": len(points),
        "real_dense_vectors": sum(1 for x in points if x[4]),
        "copied_points": sum(1 for x in points if len(x) > 5 and x[5]),
    }
    cache = Path(p["root"]) / f"queries_{p['queries']}.pkl"
    _d, _s, texts, encoded, _ms = _queries(p["queries"], cache)
    exact = _exact_top5(points, encoded) if backend == "edge" else None
    store = _open_backend(backend, settings)
    store.drop()
    store.ensure_collections(DIM)
    store.write_config(index_config(settings, DIM))
    if backend == "old" and p.get("fast_build"):
        # Local mode commits (fsyncs) once per point, ~5-8 ms each: at this size the bench
        # builds with WAL + synchronous=NORMAL on its sqlite file instead (what it measures,
        # search and open, does not depend on how the file was written).
        conn = store.client._client.collections[store.name].storage.storage
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        res["build_note"] = "built with sqlite WAL + synchronous=NORMAL (bench shortcut)"
    t = time.perf_counter()
    for batch in batches(points, lambda _point: 1):
        store.upsert((pid, v, sv, pl) for pid, v, sv, pl, *_ in batch)
    res["upsert_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    store.optimize()
    res["optimize_s"] = round(time.perf_counter() - t, 2)
    res["build_s"] = round(res["upsert_s"] + res["optimize_s"], 2)
    res["ingest_pts_s"] = round(len(points) / max(res["build_s"], 1e-9), 1)
    store.close()
    del points, store
    gc.collect()

    dense = _d or DenseEncoder(settings.embed_model, settings.embed_batch)
    sparse = _s or SparseEncoder(settings.bm25_avg_len)
    dense.encode_query("warm up")
    rss0 = proc_status_mb("VmRSS")
    t = time.perf_counter()
    store = _open_backend(backend, settings)
    res["count"] = store.count()
    res["open_s"] = round(time.perf_counter() - t, 3)
    res["rss_open_mb"] = round(proc_status_mb("VmRSS") - rss0, 1)
    retriever = Retriever(store, lambda: dense, lambda: sparse)
    for q in texts[:3]:
        retriever.search(q, "hybrid", 5)
    modes = {}
    for mode in MODES:
        e2e, st = [], []
        for j, (q, (dv, sv)) in enumerate(zip(texts, encoded)):
            if j < p.get("e2e_queries", 20):
                t = time.perf_counter()
                retriever.search(q, mode, 5)
                e2e.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.query(mode, dv, sv, 5)
            st.append((time.perf_counter() - t) * 1000)
        modes[mode] = {"search_ms": dist(e2e), "store_ms": dist(st)}
    res["modes"] = modes
    if exact is not None:
        hits = sum(
            len({x.id for x in store.query("dense", dv, None, 5)} & want)
            for (dv, _), want in zip(encoded, exact)
        )
        res["dense_recall_at_5_vs_exact"] = round(hits / max(1, sum(len(w) for w in exact)), 3)
    store.close()
    res["disk_mb"] = round(sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 2**20, 1)
    return res


STAGES = {
    "prep": stage_prep,
    "ingest": stage_ingest,
    "answers": stage_answers,
    "torch_threads": stage_torch_threads,
    "store": stage_store,
    "vectors": stage_vectors,
}


def main(argv: list[str]) -> int:
    stage, params_path, out_path = argv
    params = json.loads(Path(params_path).read_text())
    t = time.perf_counter()
    result = STAGES[stage](params)
    result["stage_wall_s"] = round(time.perf_counter() - t, 2)
    result["peak_rss_mb"] = round(proc_status_mb("VmHWM"), 1)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(out_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
