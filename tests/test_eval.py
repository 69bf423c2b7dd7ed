"""The eval suite: metrics on known rows, the gold file's integrity, the report, and the
regression gate (it must fail when a floor is raised above the measured figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eval.gate import failures
from eval.gold import DEFAULT_GOLD, GoldQuestion, answer_correct, holds_evidence, load_gold
from eval.metrics import answer_metrics, retrieval_metrics, summarise
from eval.runner import run_eval

ROOT = Path(__file__).resolve().parent.parent


def test_gold_file_is_valid_and_its_evidence_is_in_the_corpus():
    done = subprocess.run([sys.executable, str(ROOT / "eval/check_gold.py"), str(DEFAULT_GOLD), str(ROOT / "corpus")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    gold = load_gold(DEFAULT_GOLD)
    assert len(gold) >= 50 and sum(not q.answerable for q in gold) >= 10


def test_evidence_and_answer_matching_rules():
    assert holds_evidence("Introduced by  Ian\nGoodfellow in 2014, GANs", ["introduced by ian goodfellow in 2014"])
    assert not holds_evidence("Goodfellow", ["Introduced by Ian Goodfellow"])
    assert answer_correct("It was Ian Goodfellow, in 2014 [1].", [["goodfellow"], ["2014"]])
    assert not answer_correct("It was Ian Goodfellow [1].", [["goodfellow"], ["2014"]])


def test_retrieval_metrics_on_a_known_ranking():
    q = GoldQuestion("x", "?", True, evidence=["the answer"])
    passages = [{"text": "noise"}, {"text": "here is THE  answer"}, {"text": "more noise"}, {"text": "the answer again"}]
    m = retrieval_metrics(q, passages)
    assert m["hit@1"] == 0.0 and m["hit@5"] == 1.0 and m["mrr"] == 0.5
    assert 0 < m["ndcg@5"] < 1


def test_answer_metrics_count_citations_and_refusals():
    q = GoldQuestion("x", "?", True, evidence=["Goodfellow in 2014"], answer_any=[["Goodfellow"]])
    good = {"answer": "Goodfellow [1].", "abstained": False,
            "citations": [{"n": 1, "text": "by Ian Goodfellow in 2014", "supports": ["Goodfellow."]}]}
    m = answer_metrics(q, good)
    assert m["correct"] == 1.0 and m["citation_recall"] == 1.0 and m["citation_precision"] == 1.0
    refused = answer_metrics(q, {"answer": "no", "abstained": True, "citations": []})
    assert refused["false_refusal"] == 1.0 and refused["correct"] == 0.0
    unanswerable = GoldQuestion("y", "?", False)
    assert answer_metrics(unanswerable, {"abstained": True})["refused_correctly"] == 1.0


def test_unchecked_citations_count_only_where_the_evidence_is():
    """With checking off, a citation's own sentences vouch for nothing."""
    q = GoldQuestion("x", "?", True, evidence=["Goodfellow in 2014"], answer_any=[["Goodfellow"]])
    citations = [{"n": 1, "text": "by Ian Goodfellow in 2014", "supports": ["Goodfellow."]},
                 {"n": 2, "text": "VAEs are stable.", "supports": ["Goodfellow made VAEs."]}]
    checked = {"answer": "…", "abstained": False, "citations": citations,
               "checks": {"sentences": [{"text": "Goodfellow made VAEs.", "verdict": "supported"}]}}
    unchecked = dict(checked, checks={"sentences": [{"text": "Goodfellow made VAEs.", "verdict": "unchecked"}]})
    assert answer_metrics(q, checked)["citation_precision"] == 1.0
    assert answer_metrics(q, unchecked)["citation_precision"] == 0.5


def test_gate_fails_when_a_floor_is_raised_above_the_measured_figure():
    summary = summarise([{"answerable": True, "metrics": {"hit@1": 1.0, "hit@5": 1.0, "mrr": 1.0, "ndcg@5": 1.0}},
                         {"answerable": True, "metrics": {"hit@1": 0.0, "hit@5": 1.0, "mrr": 0.5, "ndcg@5": 0.6}}])
    assert failures(summary, {"retrieval": {"hit@5": 1.0, "mrr": 0.75}}, retrieval_only=True) == []
    failed = failures(summary, {"retrieval": {"hit@5": 1.0, "mrr": 0.8}}, retrieval_only=True)
    assert len(failed) == 1 and failed[0].startswith("mrr")
    ceiling = failures({"false_refusal_rate": 0.2}, {"answer": {"max": {"false_refusal_rate": 0.1}}}, retrieval_only=False)
    assert ceiling and "above its ceiling" in ceiling[0]


def test_retrieval_only_eval_writes_the_report(make_app, tmp_path):
    app = make_app()
    report = run_eval(app, DEFAULT_GOLD, tmp_path / "out", retrieval_only=True)
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["summary"]["questions"] == len(load_gold(DEFAULT_GOLD))
    assert saved["questions"][0]["metrics"]["hit@5"] in (0.0, 1.0)
    assert (tmp_path / "out/report.md").read_text().startswith("# Evaluation report")
    assert (tmp_path / "out/metrics.png").stat().st_size > 1000
    assert len((tmp_path / "out/questions.jsonl").read_text().splitlines()) == saved["summary"]["questions"]
    assert report["summary"]["hit@5"] >= 0.85


def test_cli_retrieval_gate_passes_on_the_shipped_thresholds_and_fails_above_them(tmp_path):
    """What CI runs on every submission: the retrieval-only gate."""
    env = {**__import__("os").environ, "RAG_DATA_DIR": str(tmp_path / "d")}
    cmd = [sys.executable, "-m", "rag.cli", "eval", "--retrieval-only", "--check", "--out", str(tmp_path / "o")]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert ok.returncode == 0, ok.stderr[-2000:]
    measured = json.loads((tmp_path / "o/report.json").read_text())["summary"]["mrr"]
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[retrieval]\nmrr = {min(1.0, measured + 0.05):.3f}\n')
    fail = subprocess.run(cmd + ["--thresholds", str(strict)], capture_output=True, text=True, env=env, timeout=900)
    assert fail.returncode == 1
    assert "mrr" in fail.stderr and "below its floor" in fail.stderr
