"""`python -m rag.eval.bench --quick` runs end to end and writes the figures it promises.

Slow (the default 1.5B model answers 5 questions, the embedding model embeds a few hundred
Python-doc passages): a few minutes on an idle 2-core machine. It checks the JSON's keys and
that its values are positive and sane, never speed thresholds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYDOC = Path("/usr/share/doc/python3.11/html")


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_bench_writes_the_figures(tmp_path):
    # Missing documentation fails this test, never skips it: `make test` installs it.
    assert PYDOC.is_dir(), f"{PYDOC} is missing: run make test, or apt-get install python3.11-doc"
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rag.eval.bench",
            "--quick",
            "--silent",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Index backends" in proc.stdout and "LLM bare" in proc.stdout
    data = json.loads(out.read_text())

    # The LLM measured bare, in the same run.
    assert _positive(data["prefill_tok_s"]) and _positive(data["decode_tok_s"])
    assert (
        data["prefill_tok_s"] > data["decode_tok_s"]
    )  # a batch is always faster than one token at a time

    # Per-question timings: 5 questions, those that reached the LLM have prompt tokens and a ttft.
    q = data["questions"]
    assert q["n"] == 5 and q["errors"] == 0 and q["reached_llm"] >= 1
    assert _positive(data["ttft_p50_s"]) and _positive(data["total_p50_s"])
    assert data["ttft_p95_s"] >= data["ttft_p50_s"] and data["total_p95_s"] >= data["total_p50_s"]
    assert 50 < data["prompt_tokens_p50"] < 4096
    assert _positive(data["ttft_over_floor"]) and data["ttft_over_floor"] < 50
    for row in data["answers"]["per_question"]:
        if not row["refused_before_llm"]:
            assert row["first_token_s"] <= row["total_s"] + 1e-6
    # The fixed system prompt stays in llama.cpp's KV cache between questions.
    kv = data["kv_cache"]
    assert kv["system_prompt_tokens"] > 50
    assert kv["full_prompt_reused_when_repeated"] is True
    assert q["cached_prefix_tokens"]["p50"] >= kv["system_prompt_tokens"] - 8

    # Embedding bare vs full ingest on the same passages; unchanged re-ingest is cheap.
    assert _positive(data["embed_chunks_s"]) and _positive(data["ingest_chunks_s"])
    assert 0.2 < data["ingest_over_embed"] < 20
    assert data["ingest"]["embed"]["passages"] >= 100
    assert _positive(data["reingest_unchanged_s"]) and data["reingest_unchanged_s"] < 60
    assert data["reingest"]["added"] == [0]

    # Both index backends at 1k points, measured in the same run: qdrant-client local mode (the
    # old store) and Qdrant Edge (rag's store).
    for backend in ("old", "edge"):
        got = data["retrieval_latency"][backend]["1000"]
        for mode in ("hybrid", "dense", "sparse"):
            assert _positive(got[mode]["p50_ms"]) and got[mode]["p95_ms"] >= got[mode]["p50_ms"]
            assert _positive(got[mode]["store_p50_ms"])
        assert _positive(got["peak_rss_mb"]) and _positive(got["open_s"])
        assert data["retrieval"][backend]["1000"]["count"] == 1000
    assert 0 < data["retrieval"]["edge"]["1000"]["dense_recall_at_5_vs_exact"] <= 1

    # Peak RSS of `rag ask` with the default model: at least the model file is mapped.
    assert data["ask"]["rc"] == 0
    assert 500 < data["ask_peak_rss_mb"] < 16000
    meta = data["meta"]
    assert meta["quick"] is True and len(meta["loadavg_start"]) == 3
    # Everything lived under the work dir, which is removed at the end.
    assert not (tmp_path / "work").exists()
