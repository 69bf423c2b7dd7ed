"""The eval suite: metrics on known rows, the gold file's integrity, the report, and the
regression gate (it must fail when a floor is raised above the measured figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rag.eval.gate import failures
from rag.eval.gold import DEFAULT_GOLD, GoldQuestion, answer_correct, holds_evidence, load_gold
from rag.eval.metrics import answer_metrics, retrieval_metrics, summarise
from rag.eval.runner import run_eval

ROOT = Path(__file__).resolve().parent.parent


def test_gold_file_is_valid_and_its_evidence_is_in_the_corpus():
    done = subprocess.run(
        [sys.executable, "-m", "rag.eval.check_gold", str(DEFAULT_GOLD), str(ROOT / "corpus")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    gold = load_gold(DEFAULT_GOLD)
    assert len(gold) >= 50 and sum(not q.answerable for q in gold) >= 10


def test_evidence_and_answer_matching_rules():
    assert holds_evidence(
        "Introduced by  Ian\nGoodfellow in 2014, GANs", ["introduced by ian goodfellow in 2014"]
    )
    assert not holds_evidence("Goodfellow", ["Introduced by Ian Goodfellow"])
    assert answer_correct("It was Ian Goodfellow, in 2014 [1].", [["goodfellow"], ["2014"]])
    assert not answer_correct("It was Ian Goodfellow [1].", [["goodfellow"], ["2014"]])


def test_retrieval_metrics_on_a_known_ranking():
    q = GoldQuestion("x", "?", True, evidence=["the answer"])
    passages = [
        {"text": "noise"},
        {"text": "here is THE  answer"},
        {"text": "more noise"},
        {"text": "the answer again"},
    ]
    m = retrieval_metrics(q, passages)
    assert m["hit@1"] == 0.0 and m["hit@5"] == 1.0 and m["mrr"] == 0.5
    assert 0 < m["ndcg@5"] < 1


def test_answer_metrics_count_citations_and_refusals():
    q = GoldQuestion("x", "?", True, evidence=["Goodfellow in 2014"], answer_any=[["Goodfellow"]])
    good = {
        "answer": "Goodfellow [1].",
        "abstained": False,
        "citations": [{"n": 1, "text": "by Ian Goodfellow in 2014", "supports": ["Goodfellow."]}],
    }
    m = answer_metrics(q, good)
    assert m["correct"] == 1.0 and m["citation_recall"] == 1.0 and m["citation_precision"] == 1.0
    refused = answer_metrics(q, {"answer": "no", "abstained": True, "citations": []})
    assert refused["false_refusal"] == 1.0 and refused["correct"] == 0.0
    unanswerable = GoldQuestion("y", "?", False)
    assert answer_metrics(unanswerable, {"abstained": True})["refused_correctly"] == 1.0


def test_a_checker_that_keeps_everything_scores_well_below_full_citation_precision():
    """Citation precision comes from the gold evidence alone: a checker that approves every
    sentence (its verdicts say "supported") cannot lift it."""
    gold = [
        GoldQuestion(
            "a",
            "Who introduced GANs?",
            True,
            evidence=["Goodfellow in 2014"],
            answer_any=[["Goodfellow"]],
        ),
        GoldQuestion(
            "b", "Are VAEs stable?", True, evidence=["VAEs are stable"], answer_any=[["yes"]]
        ),
        GoldQuestion("c", "Who invented the VAE?", False),
    ]
    approve_all = {"checks": {"sentences": [{"verdict": "supported"}]}}
    answers = [
        dict(
            approve_all,
            answer="Goodfellow [1] made VAEs [2].",
            abstained=False,
            citations=[
                {"n": 1, "text": "by Ian Goodfellow in 2014", "supported": True, "supports": ["x"]},
                {
                    "n": 2,
                    "text": "Diffusion models are slow.",
                    "supported": True,
                    "supports": ["y"],
                },
            ],
        ),
        dict(
            approve_all,
            answer="Yes [1].",
            abstained=False,
            citations=[
                {"n": 1, "text": "GANs are unstable.", "supported": True, "supports": ["Yes."]}
            ],
        ),
        dict(
            approve_all,
            answer="Goodfellow [1].",
            abstained=False,
            citations=[
                {
                    "n": 1,
                    "text": "by Ian Goodfellow in 2014",
                    "supported": True,
                    "supports": ["Goodfellow."],
                }
            ],
        ),
    ]
    rows = [
        {"answerable": q.answerable, "metrics": answer_metrics(q, a)} for q, a in zip(gold, answers)
    ]
    summary = summarise(rows)
    assert summary["citation_precision"] == round((0.5 + 0.0 + 0.0) / 3, 4)
    assert summary["citation_precision"] < 0.5


def test_an_answer_that_echoes_the_question_is_not_counted_correct(tmp_path):
    """The gold checker rejects an item whose answer terms already occur in the question, so
    an answer that repeats the question cannot pass; a refusal is never correct."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "doc.txt").write_text(
        "Neuro-symbolic models combine deep learning with symbolic reasoning.\n"
    )
    echo = {
        "id": "e1",
        "question": "What do neuro-symbolic models combine?",
        "answerable": True,
        "evidence": ["combine deep learning with symbolic reasoning"],
        "answer_any": [["symbolic"]],
        "sources": ["doc.txt"],
    }
    fixed = dict(echo, answer_any=[["deep learning", "neural"]])
    gold = tmp_path / "g.jsonl"
    outputs = []
    for item, code in ((echo, 1), (fixed, 0)):
        gold.write_text(json.dumps(item) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "rag.eval.check_gold", str(gold), str(corpus)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == code, done.stdout
        outputs.append(done.stdout)
    assert "already occurs in the question" in outputs[0]
    q = GoldQuestion(
        "e1", echo["question"], True, evidence=echo["evidence"], answer_any=fixed["answer_any"]
    )
    echoed = {
        "answer": "Neuro-symbolic models combine symbolic things [1].",
        "abstained": False,
        "citations": [
            {"n": 1, "text": "Neuro-symbolic models combine deep learning with symbolic reasoning."}
        ],
    }
    assert answer_metrics(q, echoed)["correct"] == 0.0
    refusal = {
        "answer": "deep learning is not in the documents",
        "abstained": True,
        "citations": [],
    }
    assert answer_metrics(q, refusal)["correct"] == 0.0


def test_gate_fails_when_a_floor_is_raised_above_the_measured_figure():
    summary = summarise(
        [
            {
                "answerable": True,
                "metrics": {"hit@1": 1.0, "hit@5": 1.0, "mrr": 1.0, "ndcg@5": 1.0},
            },
            {
                "answerable": True,
                "metrics": {"hit@1": 0.0, "hit@5": 1.0, "mrr": 0.5, "ndcg@5": 0.6},
            },
        ]
    )
    assert failures(summary, {"retrieval": {"hit@5": 1.0, "mrr": 0.75}}, retrieval_only=True) == []
    failed = failures(summary, {"retrieval": {"hit@5": 1.0, "mrr": 0.8}}, retrieval_only=True)
    assert len(failed) == 1 and failed[0].startswith("mrr")
    ceiling = failures(
        {"false_refusal_rate": 0.2},
        {"answer": {"max": {"false_refusal_rate": 0.1}}},
        retrieval_only=False,
    )
    assert ceiling and "above its ceiling" in ceiling[0]


def test_retrieval_only_eval_writes_the_report(make_app, tmp_path):
    app = make_app()
    report = run_eval(app, DEFAULT_GOLD, tmp_path / "out", retrieval_only=True)
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["summary"]["questions"] == len(load_gold(DEFAULT_GOLD))
    assert saved["questions"][0]["metrics"]["hit@5"] in (0.0, 1.0)
    assert (tmp_path / "out/report.md").read_text().startswith("# Evaluation report")
    assert (tmp_path / "out/metrics.png").stat().st_size > 1000
    assert (
        len((tmp_path / "out/questions.jsonl").read_text().splitlines())
        == saved["summary"]["questions"]
    )
    assert report["summary"]["hit@5"] >= 0.85


def test_cli_retrieval_gate_passes_on_the_shipped_thresholds_and_fails_above_them(tmp_path):
    """What CI runs on every submission: the retrieval-only gate."""
    env = {**__import__("os").environ, "RAG_DATA_DIR": str(tmp_path / "d")}
    cmd = [
        sys.executable,
        "-m",
        "rag.cli",
        "eval",
        "--retrieval-only",
        "--check",
        "--out",
        str(tmp_path / "o"),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert ok.returncode == 0, ok.stderr[-2000:]
    measured = json.loads((tmp_path / "o/report.json").read_text())["summary"]["mrr"]
    strict = tmp_path / "strict.toml"
    strict.write_text(f"[retrieval]\nmrr = {min(1.0, measured + 0.05):.3f}\n")
    fail = subprocess.run(
        cmd + ["--thresholds", str(strict)], capture_output=True, text=True, env=env, timeout=900
    )
    assert fail.returncode == 1
    assert "mrr" in fail.stderr and "below its floor" in fail.stderr


def test_llama_index_baseline_is_hybrid_cited_and_scored_like_rag(make_answer_app, small_llm):
    """The comparison baseline runs end to end on a small set, so it cannot rot: hybrid
    search through QdrantVectorStore, the same number of passages as rag's prompt, and
    citations scored by the gold evidence."""
    from rag.eval.baseline import COLLECTION, LlamaIndexBaseline
    from rag.eval.runner import run_questions

    app = make_answer_app(small_llm, expand_query=False)
    app.ingest()
    baseline = LlamaIndexBaseline(app)
    info = baseline.client.get_collection(COLLECTION)
    assert info.config.params.sparse_vectors, (
        "the baseline's collection has no sparse (BM25) vectors"
    )
    gold = load_gold(DEFAULT_GOLD)[:3]
    rows = run_questions(app, gold, ask=baseline.ask, progress=False)
    assert all(len(r["passages"]) == app.settings.context_passages for r in rows)
    assert all("correct" in r["metrics"] or not r["answerable"] for r in rows)
    summary = summarise(rows)
    assert summary["hit@5"] is not None


def test_a_recheck_of_recorded_answers_reproduces_them(make_answer_app, default_llm):
    """`python -m rag.eval.recheck` measures a checker change on the answers a run recorded:
    replayed through the answer path with the same checker, every answer, refusal and
    citation comes out as it was recorded, so what moves in a recheck is the checker's doing."""
    from rag.eval.recheck import recheck
    from rag.eval.runner import run_questions

    app = make_answer_app(default_llm)
    app.ingest()
    gold = [q for q in load_gold(DEFAULT_GOLD) if q.answerable][:3]
    rows = run_questions(app, gold, progress=False)
    assert any(not r["abstained"] for r in rows), "no answer to replay"
    again = recheck(app, json.loads(json.dumps(rows)), DEFAULT_GOLD)
    for was, now in zip(rows, again):
        assert now["answer"] == was["answer"]
        assert now["abstained"] == was["abstained"]
        assert [c["text"] for c in now["citations"]] == [c["text"] for c in was["citations"]]
        assert now["metrics"] == was["metrics"]
