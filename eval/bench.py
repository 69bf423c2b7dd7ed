"""`python -m rag.eval.bench`: how fast `rag` is on this machine, and where the time goes.

    python -m rag.eval.bench [--quick] [--json FILE] [--model PRESET] [--sizes 1000,10000,50000]

Every figure is measured in this run, next to its own baseline: the LLM bare (prefill and
decode rates) before the questions, so time-to-first-token is reported against the floor
prompt_tokens / prefill rate; the embedding model bare on the same passages that are then
ingested, so ingest is reported as a multiple of pure embedding time. Each stage runs in a
fresh process (eval/bench_stages.py) so its peak RSS is its own. Everything is written under
a temporary folder, removed at the end (--keep keeps it).

The retrieval sizes are built from the Python documentation (Debian's python3.11-doc, HTML
under /usr/share/doc/python3.11/html): every point carries a real passage's payload and BM25
vector; the passages embedded by the embed stage keep their real dense vector and the others
reuse one of those, perturbed (embedding 50k passages on 2 cores takes over an hour, and
search cost depends on the number of points, not on what the vectors mean). The output says
how many dense vectors are real at each size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag.eval.bench_stages import dist

ROOT = Path(__file__).resolve().parent.parent
PYDOC = Path("/usr/share/doc/python3.11/html")
ASK_QUESTION = "Who introduced GANs, and when?"


# -- running things ---------------------------------------------------------------------------
def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run(cmd: list[str], env: dict, log: Path, timeout: float = 7200) -> dict:
    """Run a command; wall time and the child's own peak RSS (wait4's ru_maxrss)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=str(ROOT))
        deadline = t + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": log.with_suffix(".out").read_text(errors="replace"),
        "stderr": log.with_suffix(".err").read_text(errors="replace"),
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="rag-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.results: dict = {"meta": {}}
        self.load_samples: list[dict] = []
        self.t0 = time.perf_counter()

    def note_load(self, label: str) -> None:
        self.load_samples.append(
            {
                "at": label,
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "t_s": round(time.perf_counter() - self.t0, 1),
            }
        )

    def say(self, msg: str) -> None:
        if not self.args.silent:
            la = os.getloadavg()[0]
            sys.stderr.write(f"[bench {time.perf_counter() - self.t0:6.0f}s load {la:.1f}] {msg}\n")
            sys.stderr.flush()

    def stage(
        self, name: str, label: str | None = None, _env: dict | None = None, **params
    ) -> dict:
        label = label or name
        self.say(f"{label} …")
        self.note_load(label)
        params.setdefault("root", str(self.work))
        ppath = self.work / f"{label}.params.json"
        opath = self.work / f"{label}.result.json"
        ppath.write_text(json.dumps(params))
        r = run(
            [sys.executable, "-m", "rag.eval.bench_stages", name, str(ppath), str(opath)],
            child_env(**(_env or {})),
            self.logs / label,
        )
        if r["rc"] != 0 or not opath.exists():
            tail = r["stderr"].strip().splitlines()[-6:]
            self.say(f"{label} FAILED rc={r['rc']}: {' | '.join(tail)}")
            return {"error": "\n".join(tail), "rc": r["rc"]}
        out = json.loads(opath.read_text())
        out["process_wall_s"] = r["wall_s"]
        out["process_peak_rss_mb"] = r["peak_rss_mb"]
        self.say(f"{label} done in {r['wall_s']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
        return out

    # -- the model file, shared by every data dir ----------------------------------------
    def link_model(self) -> str:
        """The model file every data dir of the bench links to. A preset already assembled and
        verified in the user's data dir is hard-linked (no copy, no rehash); otherwise it is
        assembled from its packages into the bench folder, as `rag` would do on first use."""
        from rag.errors import MissingModel
        from rag.settings import load_settings
        from rag.weights import PRESETS, record_verified, resolve_model, sidecar_path, verify

        model = self.args.model
        models = self.work / "models"
        models.mkdir(exist_ok=True)
        if model not in PRESETS:
            return str(Path(model).expanduser().resolve())
        preset = PRESETS[model]
        for settings in (load_settings(), load_settings(env={})):
            src = settings.models_dir / preset.filename
            if not src.is_file() or (models / preset.filename).exists():
                continue
            try:
                verify(
                    src,
                    preset.sha256,
                    preset.size,
                    sidecar_path(settings.models_dir, preset.filename),
                    "",
                )
                os.link(src, models / preset.filename)
                # Same inode as a file rag has verified: record the check instead of rehashing 1 GB.
                record_verified(models / preset.filename, preset.sha256)
            except (OSError, MissingModel):
                continue
        resolve_model(model, models)  # assembles or verifies what is there
        return model

    def data_dir(self, name: str) -> Path:
        d = self.work / name
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "models").exists():
            (d / "models").symlink_to(self.work / "models", target_is_directory=True)
        return d

    # -- the plan ------------------------------------------------------------------------
    def run_all(self) -> dict:
        a = self.args
        self.t0 = time.perf_counter()
        q = self.quick
        sizes = (
            [int(x) for x in a.sizes.split(",")]
            if a.sizes
            else ([1000] if q else [1000, 10000, 50000, 200000])
        )
        n_questions = a.questions if a.questions is not None else (5 if q else None)
        R = self.results
        R["meta"] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": q,
            "model": a.model,
            "sizes": sizes,
            "cpu_count": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "workdir": str(self.work),
            "versions": _versions(),
            "corpus_note": (
                "retrieval sizes: real Python-doc passages (payload + BM25 vector); "
                "dense vectors real for "
                "the embedded passages, reused + perturbed for the rest (see real_dense_vectors)"
            ),
        }
        if not PYDOC.is_dir():
            raise SystemExit(f"bench: {PYDOC} not found: apt-get install -y python3.11-doc")
        self.say(f"work dir {self.work}")
        model = self.link_model()
        gdata, pdata = self.data_dir("data_guides"), self.data_dir("data_pydoc")

        prep = self.stage(
            "prep",
            embed_target=a.embed_passages or (250 if q else 1500),
            pool_size=max(sizes),
            pydoc_root=str(PYDOC),
        )
        R["prep"] = prep
        if "error" in prep:
            return R
        corpus, guides = prep["corpus_dir"], prep["guides_dir"]

        if a.stores_only:
            R["vectors"] = self.stage("vectors", corpus_dir=prep["corpus_dir"])
            self.retrieval(prep, sizes)
            return self.finish(R)
        R["ingest"] = self.stage(
            "ingest",
            corpus_dir=corpus,
            guides_dir=guides,
            pydoc_data=str(pdata),
            guides_data=str(gdata),
        )
        self.reingest_cli(gdata, guides, runs=1 if q else 3)
        R["answers"] = self.stage(
            "answers",
            guides_dir=guides,
            guides_data=str(gdata),
            model=model,
            questions=n_questions,
            prefill_tokens=500,
            prefill_reps=2 if q else 3,
            decode_tokens=128,
            kv_checks=1 if q else 3,
            kv_light=q,
            threads_probe=not q,
        )
        self.ask_rss(gdata, guides, model)
        if not q:
            R["torch_threads"] = {
                "omp_default": self.stage(
                    "torch_threads", label="torch_threads_default", pool_path=prep["pool_path"]
                ),
                "omp_passive": self.stage(
                    "torch_threads",
                    label="torch_threads_passive",
                    pool_path=prep["pool_path"],
                    _env={"OMP_WAIT_POLICY": "PASSIVE"},
                ),
            }

        self.retrieval(prep, sizes)
        return self.finish(R)

    def finish(self, R: dict) -> dict:
        self.note_load("end")
        R["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        R["meta"]["loadavg_samples"] = self.load_samples
        R["meta"]["duration_s"] = round(time.perf_counter() - self.t0, 1)
        return R

    def retrieval(self, prep: dict, sizes: list[int]) -> None:
        """Old store (qdrant-client local mode) and Edge at each size, one fresh process each."""
        q = self.quick
        R = self.results
        R["retrieval"] = {"old": {}, "edge": {}, "cli_search": {}}
        n_queries = 10 if q else 76
        vectors = str(self.work / "vectors.npz")
        for n in sizes:
            for backend in self.args.backends.split(","):
                d = self.data_dir(f"size_{backend}_{n}")
                # The old store scores keywords with a Python loop over every point (seconds
                # a query at 200k): past 10k it answers the first 20 questions only.
                queries = min(n_queries, 20) if backend == "old" and n > 10000 else n_queries
                R["retrieval"][backend][str(n)] = self.stage(
                    "store",
                    label=f"{backend}_{n}",
                    backend=backend,
                    size=n,
                    data_dir=str(d),
                    pool_path=prep["pool_path"],
                    vectors_path=vectors,
                    queries=queries,
                    e2e_queries=10 if q else 20,
                    fast_build=n > 10000,
                )
                if backend == "edge":
                    self.cli_search(n, d)
                # The larger indexes take GBs on disk: keep the disk tidy as we go.
                if not self.args.keep:
                    shutil.rmtree(d, ignore_errors=True)

    def reingest_cli(self, gdata: Path, guides: str, runs: int) -> None:
        """`rag ingest` of the unchanged guides, in a subprocess, as a user runs it."""
        self.say("rag ingest (unchanged guides) …")
        self.note_load("reingest_cli")
        env = child_env(RAG_DATA_DIR=str(gdata), RAG_CORPUS=guides)
        walls, rss, reports = [], [], []
        for i in range(runs):
            r = run(rag_cmd("ingest", "--json"), env, self.logs / f"reingest_{i}")
            if r["rc"] != 0:
                self.results["reingest"] = {"error": r["stderr"][-500:]}
                return
            walls.append(r["wall_s"])
            rss.append(r["peak_rss_mb"])
            try:
                reports.append(json.loads(r["stdout"].strip().splitlines()[-1]))
            except (ValueError, IndexError):
                pass
        base = run([sys.executable, "-c", "pass"], env, self.logs / "python_start")
        imp = run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "import sys; from rag.cli import main; sys.exit(main(['ingest', '--json']))",
            ],
            env,
            self.logs / "reingest_importtime",
        )
        ing = self.results.get("ingest", {})
        self.results["reingest"] = {
            "cli_wall_s": walls,
            "cli_wall_s_median": round(statistics.median(walls), 3),
            "cli_peak_rss_mb": max(rss),
            "reported_seconds": [round(x.get("seconds", 0), 3) for x in reports],
            "added": [x.get("added") for x in reports],
            "python_start_s": base["wall_s"],
            "top_imports": _top_imports(imp["stderr"]),
            "in_process_warm_s": ing.get("guides_unchanged_warm", {}).get("wall_s"),
            "in_process_cold_s": ing.get("guides_unchanged_cold", {}).get("wall_s"),
        }

    def ask_rss(self, gdata: Path, guides: str, model: str) -> None:
        self.say("rag ask (peak RSS) …")
        self.note_load("ask_rss")
        env = child_env(RAG_DATA_DIR=str(gdata), RAG_CORPUS=guides, RAG_LLM=model)
        r = run(rag_cmd("ask", ASK_QUESTION, "--json"), env, self.logs / "ask")
        out = {
            "question": ASK_QUESTION,
            "rc": r["rc"],
            "wall_s": r["wall_s"],
            "peak_rss_mb": r["peak_rss_mb"],
        }
        try:
            ans = json.loads(r["stdout"].strip().splitlines()[-1])
            out["timings_ms"] = ans.get("timings_ms") or ans.get("timings")
            out["answer"] = ans.get("answer", "")[:200]
        except (ValueError, IndexError):
            out["error"] = r["stderr"][-400:]
        self.results["ask"] = out

    def cli_search(self, n: int, data: Path) -> None:
        env = child_env(RAG_DATA_DIR=str(data))
        r = run(rag_cmd("search", ASK_QUESTION, "--json"), env, self.logs / f"search_{n}")
        self.results["retrieval"]["cli_search"][str(n)] = {
            "rc": r["rc"],
            "wall_s": r["wall_s"],
            "peak_rss_mb": r["peak_rss_mb"],
        }


def rag_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "rag"
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "rag.cli", *args]


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "llama-cpp-python",
        "qdrant-client",
        "qdrant-edge-py",
        "sentence-transformers",
        "torch",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _top_imports(stderr: str, n: int = 6) -> list[str]:
    """The heaviest top-level imports from `python -X importtime` (cumulative seconds)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        try:
            cum = int(parts[1])
        except ValueError:
            continue
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):  # top level: one space of indent
            rows.append((cum, name.strip()))
    rows.sort(reverse=True)
    return [f"{name} {cum / 1e6:.2f}s" for cum, name in rows[:n]]


# -- the summary --------------------------------------------------------------------------------
def summarise(R: dict) -> dict:
    """Flat headline figures (the JSON's top level) from the stage results."""
    S: dict = {}
    ans = R.get("answers", {})
    ing = R.get("ingest", {})
    emb = ing.get("embed", {})
    S["prefill_tok_s"] = ans.get("prefill_tok_s")
    S["decode_tok_s"] = ans.get("decode_tok_s")
    rows = [r for r in ans.get("per_question", []) if "error" not in r]
    llm_rows = [r for r in rows if not r["refused_before_llm"] and r.get("prompt_tokens")]
    pre = S["prefill_tok_s"]
    for r in llm_rows:
        if pre:
            floor = r["prompt_tokens"] / pre
            r["floor_s"] = round(floor, 3)
            r["ttft_over_floor"] = round(r["first_token_s"] / floor, 3)
            uncached = r["prompt_tokens"] - r.get("cached_prefix", 0)
            r["ttft_over_uncached_floor"] = round(r["first_token_s"] / (max(1, uncached) / pre), 3)
        gen_s = r["total_s"] - r["first_token_s"]
        if r.get("answer_tokens") and gen_s > 0:
            r["answer_tok_s"] = round(r["answer_tokens"] / gen_s, 2)
    q = {
        "n": len(rows),
        "reached_llm": len(llm_rows),
        "refused_before_llm": sum(1 for r in rows if r["refused_before_llm"]),
        "errors": sum(1 for r in ans.get("per_question", []) if "error" in r),
        "prompt_tokens": dist([r["prompt_tokens"] for r in llm_rows], 0),
        "ttft_s": dist([r["first_token_s"] for r in llm_rows]),
        "total_s": dist([r["total_s"] for r in llm_rows]),
        "total_s_all": dist([r["total_s"] for r in rows]),
        "retrieve_s": dist([r["retrieve_s"] for r in rows], 3),
        "ttft_over_floor": dist([r["ttft_over_floor"] for r in llm_rows if "ttft_over_floor" in r]),
        "ttft_over_uncached_floor": dist(
            [r["ttft_over_uncached_floor"] for r in llm_rows if "ttft_over_uncached_floor" in r]
        ),
        "answer_tok_s": dist([r["answer_tok_s"] for r in llm_rows if "answer_tok_s" in r]),
        "cached_prefix_tokens": dist([r.get("cached_prefix", 0) for r in llm_rows[1:]], 0),
        "first_question": llm_rows[0] if llm_rows else None,
    }
    S["questions"] = q
    S["ttft_p50_s"], S["ttft_p95_s"] = q["ttft_s"]["p50"], q["ttft_s"]["p95"]
    S["total_p50_s"], S["total_p95_s"] = q["total_s"]["p50"], q["total_s"]["p95"]
    S["prompt_tokens_p50"], S["prompt_tokens_p95"] = (
        q["prompt_tokens"]["p50"],
        q["prompt_tokens"]["p95"],
    )
    S["ttft_over_floor"] = q["ttft_over_floor"]["p50"]
    S["kv_cache"] = _kv_verdict(ans, pre)

    S["embed_chunks_s"] = emb.get("embed_chunks_s")
    pyd = ing.get("pydoc", {})
    S["ingest_chunks_s"] = pyd.get("ingest_chunks_s")
    if S["embed_chunks_s"] and S["ingest_chunks_s"]:
        S["ingest_over_embed"] = round(S["embed_chunks_s"] / S["ingest_chunks_s"], 3)  # time ratio
    bd = pyd.get("breakdown_s", {})
    if bd and pyd.get("wall_s"):
        S["ingest_dense_share"] = round(bd.get("dense_encode", 0) / pyd["wall_s"], 3)
    g = ing.get("guides", {})
    S["guides"] = {
        "passages": g.get("added"),
        "embed_chunks_s": ing.get("guides_embed", {}).get("embed_chunks_s"),
        "ingest_chunks_s": g.get("ingest_chunks_s"),
    }
    if S["guides"]["embed_chunks_s"] and S["guides"]["ingest_chunks_s"]:
        S["guides"]["ingest_over_embed"] = round(
            S["guides"]["embed_chunks_s"] / S["guides"]["ingest_chunks_s"], 3
        )
    re_ = R.get("reingest", {})
    S["reingest_unchanged_s"] = re_.get("cli_wall_s_median")
    S["reingest_unchanged_in_process_s"] = re_.get("in_process_warm_s")
    S["ask_peak_rss_mb"] = R.get("ask", {}).get("peak_rss_mb")

    ret = {}
    for backend in ("old", "edge"):
        for n, r in R.get("retrieval", {}).get(backend, {}).items():
            if "modes" not in r:
                continue
            row = ret.setdefault(backend, {}).setdefault(n, {})
            for mode, m in r["modes"].items():
                row[mode] = {
                    "p50_ms": m["search_ms"]["p50"],
                    "p95_ms": m["search_ms"]["p95"],
                    "store_p50_ms": m["store_ms"]["p50"],
                    "store_p95_ms": m["store_ms"]["p95"],
                }
            for key in (
                "peak_rss_mb",
                "open_s",
                "rss_open_mb",
                "ingest_pts_s",
                "real_dense_vectors",
                "copied_points",
            ):
                row[key] = r.get(key)
    S["retrieval_latency"] = ret
    return S


def _kv_verdict(ans: dict, pre: float | None) -> dict:
    """Does llama.cpp keep the fixed system prompt (and a repeated prompt) in its KV cache?
    Evidence: the cached prefix measured before each generation, the ttft of a prompt asked
    cold / after another question / again, and the questions' own ttft against their floor."""
    checks = ans.get("kv_checks") or []
    sys_tok = ans.get("system_prompt_tokens")
    out = {"system_prompt_tokens": sys_tok, "checks": checks}
    if not pre or not sys_tok:
        return out
    out["expected_saving_s"] = round(sys_tok / pre, 2)
    rows = [r for r in ans.get("per_question", []) if r.get("prompt_tokens")]
    later = [r.get("cached_prefix", 0) for r in rows[1:]]
    out["system_prefix_reused"] = bool(later) and min(later) >= sys_tok - 8
    colds = [c["cold"]["ttft_s"] for c in checks if c.get("cold", {}).get("ttft_s")]
    warms = [
        c["after_other_question"]["ttft_s"]
        for c in checks
        if c.get("after_other_question", {}).get("ttft_s")
    ]
    if colds and warms:
        out["measured_saving_s"] = round(statistics.median(colds) - statistics.median(warms), 2)
    reps = [
        (c["repeated"]["ttft_s"], c["repeated"]["cached_prefix"], c["prompt_tokens"])
        for c in checks
        if c.get("repeated")
    ]
    out["full_prompt_reused_when_repeated"] = bool(reps) and all(
        t is not None and cp is not None and cp >= n - 2 and t < 0.5 * n / pre for t, cp, n in reps
    )
    return out


def fmt(x, spec=".1f", none="–"):
    return none if x is None else format(x, spec)


def table(R: dict, S: dict) -> str:
    m = R["meta"]
    L = []
    w = L.append
    w(
        f"rag bench  {m['started']}  {'QUICK' if m['quick'] else 'full'}  model={m['model']}  "
        f"cores={m['cpu_count']}  "
        f"load avg start {'/'.join(map(str, m['loadavg_start']))}  "
        f"end {'/'.join(map(str, m.get('loadavg_end', [])))}  "
        f"({m.get('duration_s', 0) / 60:.1f} min)"
    )
    ans = R.get("answers", {})
    if "error" in ans or not ans:
        w(f"answers stage failed or not run: {ans.get('error', '')}")
    else:
        w("")
        w(
            f"LLM bare   prefill {fmt(S['prefill_tok_s'])} tok/s ({ans.get('prefill_tokens')} tok, "
            f"empty cache; runs "
            f"{ans.get('prefill_runs_tok_s')})   decode {fmt(S['decode_tok_s'], '.2f')} tok/s "
            f"({ans.get('decode_tokens')} tok)   "
            f"load {fmt(ans.get('llm_load_s'), '.1f')} s  threads {ans.get('n_threads')}"
        )
        q = S["questions"]
        w(
            f"Questions  {q['n']} asked, {q['reached_llm']} reached the LLM, "
            f"{q['refused_before_llm']} refused before it, {q['errors']} errors"
        )
        w(f"  {'':28}{'p50':>9}{'p95':>9}{'max':>9}")
        for label, key, spec in (
            ("prompt tokens", "prompt_tokens", ".0f"),
            ("time to first token s", "ttft_s", ".2f"),
            ("total s (LLM questions)", "total_s", ".2f"),
            ("retrieve s", "retrieve_s", ".3f"),
            ("ttft / floor", "ttft_over_floor", ".2f"),
            ("ttft / uncached floor", "ttft_over_uncached_floor", ".2f"),
            ("answer tok/s (incl. verify)", "answer_tok_s", ".2f"),
            ("KV-cached prefix tokens", "cached_prefix_tokens", ".0f"),
        ):
            d = q[key]
            w(
                f"  {label:28}{fmt(d['p50'], spec):>9}{fmt(d['p95'], spec):>9}"
                f"{fmt(d['max'], spec):>9}"
            )
        w(
            "  floor = prompt_tokens / prefill_tok_s "
            "(the whole prompt prefilled at the bare rate); uncached floor"
        )
        w("  counts only the tokens not already in llama.cpp's KV cache.")
        fq = q.get("first_question")
        if fq:
            w(
                f"  first question (cold cache): ttft {fq['first_token_s']:.2f} s "
                f"for {fq['prompt_tokens']} tokens, "
                f"cached prefix {fq.get('cached_prefix', 0)}"
            )
        kv = S["kv_cache"]
        for c in kv.get("checks", []):
            parts = []
            for key, label in (
                ("cold", "cold"),
                ("after_other_question", "after another question"),
                ("repeated", "asked again"),
            ):
                if key in c:
                    parts.append(
                        f"{label} {fmt(c[key]['ttft_s'], '.2f')} s "
                        f"(cached {c[key]['cached_prefix']})"
                    )
            w(f"  KV check q#{c['i']} ({c['prompt_tokens']} tok): " + "; ".join(parts))
        if kv.get("expected_saving_s") is not None:
            w(
                f"  system prompt {kv['system_prompt_tokens']} tok = {kv['expected_saving_s']} s "
                f"of prefill; measured saving "
                f"{fmt(kv.get('measured_saving_s'), '.2f')} s → system-prefix reuse holds: "
                f"{kv['system_prefix_reused']}; "
                f"a repeated question reuses its whole prompt: "
                f"{kv['full_prompt_reused_when_repeated']}"
            )
    tp = ans.get("threads_probe") if isinstance(ans, dict) else None
    if tp:
        w(
            "  llama.cpp threads (decode/batch), bare, 2 interleaved runs: "
            + "; ".join(
                f"{k}: prefill {v['prefill_tok_s']} decode {v['decode_tok_s']} tok/s"
                for k, v in tp.items()
            )
        )
    tt = R.get("torch_threads")
    if tt:
        for k, v in tt.items():
            if "error" in v:
                continue
            w(
                f"  torch ({k}, OMP_WAIT_POLICY={v['omp_wait_policy']}): "
                + "; ".join(
                    f"{th}: query {d['query_ms']} ms, batch {d['batch_passages_s']} passages/s"
                    for th, d in v.items()
                    if th.startswith("threads_")
                )
            )
    ing = R.get("ingest", {})
    w("")
    if "error" in ing or not ing:
        w(f"embed/ingest failed or not run: {ing.get('error', '')}")
    else:
        pyd, emb, info = ing["pydoc"], ing["embed"], ing["embed_info"]
        w(
            f"Embedding & ingest  ({emb['passages']} Python-doc passages from "
            f"{R['prep']['corpus_files']} HTML files; "
            f"wordpiece tokens mean {info['wordpiece_tokens']['mean']}, "
            f"{100 * info['wordpiece_tokens']['over_max_seq']:.0f}% "
            f"over max_seq {info['max_seq_length']}; batch {info['batch_size']}, "
            f"torch threads {info['torch_threads']})"
        )
        w(
            f"  embed bare       {fmt(S['embed_chunks_s'])} passages/s   "
            f"(same process, before/after the ingest: "
            f"{emb['before_ingest_s']} s / {emb['after_ingest_s']} s; "
            f"models load {ing['models_load_s']} s; BM25 "
            f"{fmt(info.get('sparse_chunks_s'), '.0f')} passages/s)"
        )
        w(
            f"  ingest full      {fmt(S['ingest_chunks_s'])} passages/s   "
            f"ingest time / embed time = "
            f"{fmt(S.get('ingest_over_embed'), '.2f')}x; dense encoding is "
            f"{fmt(100 * (S.get('ingest_dense_share') or 0), '.0f')}% "
            f"of the ingest wall time"
        )
        bd = pyd.get("breakdown_s", {})
        tot = pyd.get("wall_s") or 1
        w(
            "  ingest breakdown "
            + ", ".join(f"{k} {v:.1f}s ({100 * v / tot:.0f}%)" for k, v in list(bd.items())[:7])
        )
        w(f"  unchanged re-run of that corpus in process: {ing['pydoc_unchanged']['wall_s']} s")
        g = S["guides"]
        w(
            f"  3 guides ({g['passages']} passages): embed bare {fmt(g['embed_chunks_s'])}/s, "
            f"ingest {fmt(g['ingest_chunks_s'])}/s, "
            f"ingest/embed time {fmt(g.get('ingest_over_embed'), '.2f')}x"
        )
    re_ = R.get("reingest", {})
    if re_ and "error" not in re_:
        w(
            f"Re-ingest unchanged guides: `rag ingest` wall {re_['cli_wall_s_median']:.2f} s "
            f"(runs {re_['cli_wall_s']}, "
            f"reported {re_['reported_seconds']} s, peak RSS {re_['cli_peak_rss_mb']:.0f} MB; "
            f"bare python start "
            f"{re_['python_start_s']:.2f} s); "
            f"in process warm {fmt(re_['in_process_warm_s'], '.3f')} s, new app "
            f"{fmt(re_['in_process_cold_s'], '.3f')} s"
        )
        if re_.get("top_imports"):
            w("  heaviest imports: " + ", ".join(re_["top_imports"]))
    ask = R.get("ask", {})
    if ask:
        w(
            f"`rag ask` (default flags, {ask.get('question')!r}): "
            f"peak RSS {fmt(ask.get('peak_rss_mb'), '.0f')} MB, "
            f"wall {fmt(ask.get('wall_s'), '.1f')} s, timings {ask.get('timings_ms')}"
        )
    w("")
    w(
        "Index backends: old = qdrant-client local mode (rag's store before Qdrant Edge), "
        "edge = Qdrant Edge"
    )
    w(
        "(rag's store). Latency ms p50/p95 over the gold questions "
        "(the old store past 10k: the first 20), top 5:"
    )
    w("search = Retriever.search including")
    w(
        "query encoding; store = the store call alone. "
        "Open = a fresh store object on the built index;"
    )
    w("RSS = the stage process's peak; build = upsert (+ optimise for Edge) in points/s.")
    w(
        f"  {'points':>7} {'backend':7} {'':6} {'hybrid':>13} {'dense':>13} {'sparse':>13} "
        f"{'open s':>7} {'peak RSS MB':>11} {'open +MB':>8} {'build pt/s':>10}"
    )
    ret = R.get("retrieval", {})
    for n in [str(x) for x in m.get("sizes", [])]:
        for backend in ("old", "edge"):
            r = ret.get(backend, {}).get(n)
            if not r:
                continue
            if "error" in r:
                w(f"  {n:>7} {backend:7} failed: {r['error'][-120:]}")
                continue
            for i, kind in enumerate(("store", "search")):
                cells = [
                    f"{r['modes'][x][kind + '_ms']['p50']:.1f}/"
                    f"{r['modes'][x][kind + '_ms']['p95']:.1f}"
                    for x in ("hybrid", "dense", "sparse")
                ]
                tail = (
                    (
                        f" {fmt(r.get('open_s'), '.2f'):>7} {fmt(r.get('peak_rss_mb'), '.0f'):>11} "
                        f"{fmt(r.get('rss_open_mb'), '.0f'):>8} "
                        f"{fmt(r.get('ingest_pts_s'), '.0f'):>10}"
                    )
                    if i == 0
                    else ""
                )
                w(
                    f"  {n if i == 0 else '':>7} {backend if i == 0 else '':7} {kind:6} "
                    f"{cells[0]:>13} {cells[1]:>13} {cells[2]:>13}{tail}"
                )
            notes = [f"{r.get('real_dense_vectors')} real dense vectors"]
            if r.get("copied_points"):
                notes.append(f"{r['copied_points']} points copied from the pool under new ids")
            if "dense_recall_at_5_vs_exact" in r:
                notes.append(f"HNSW dense recall@5 vs exact {r['dense_recall_at_5_vs_exact']}")
            if r.get("build_note"):
                notes.append(r["build_note"])
            w(f"  {'':>7} {'':7} ({'; '.join(notes)})")
        cli = ret.get("cli_search", {}).get(n)
        if cli:
            w(
                f"  {n:>7} `rag search` on the Edge index, one process: "
                f"{fmt(cli.get('wall_s'), '.1f')} s, "
                f"peak RSS {fmt(cli.get('peak_rss_mb'), '.0f')} MB"
            )
    w("")
    w(
        "Load average during the run: "
        + "; ".join(f"{s['at']} {s['loadavg'][0]}" for s in m.get("loadavg_samples", []))
    )
    return "\n".join(L)


def parse(argv):
    p = argparse.ArgumentParser(
        prog="python -m rag.eval.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick", action="store_true", help="small run (1k points, 5 questions): a few minutes"
    )
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--model", default="qwen2.5-coder-1.5b", help="LLM preset or .gguf path")
    p.add_argument(
        "--sizes", help="retrieval sizes, comma-separated (default 1000,10000,50000; quick 1000)"
    )
    p.add_argument("--questions", type=int, help="gold questions to ask (default all; quick 5)")
    p.add_argument(
        "--embed-passages",
        type=int,
        help="passages in the embed/ingest corpus (default 1500; quick 250)",
    )
    p.add_argument(
        "--stores-only",
        action="store_true",
        help="only the index backends (old store vs Qdrant Edge) at each size",
    )
    p.add_argument(
        "--backends",
        default="old,edge",
        help="index backends to measure, comma-separated (default old,edge)",
    )
    p.add_argument("--workdir", help="use this folder instead of a new temporary one")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    bench = Bench(args)
    failed = False
    try:
        try:
            bench.run_all()
        except Exception as exc:  # keep what was measured; say what broke
            import traceback

            failed = True
            bench.results["meta"]["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        R = bench.results
        S = summarise(R)
        out = {**S, **R}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=1, default=str))
        print(table(R, S))
        if args.json:
            print(f"\nwrote {args.json}")
    finally:
        if not args.keep:
            shutil.rmtree(bench.work, ignore_errors=True)
        else:
            print(f"kept {bench.work}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
