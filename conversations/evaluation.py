"""Answer evaluation: run a client's test questions through the reply drafting and measure it.

A question set is a CSV or JSONL file of `question`, `expected` (a fact the right answer
contains, alternatives separated by `|`, or `none` for a question the knowledge does not
answer) and an optional `language` label (any text: `en`, `ar-gulf`, `arabizi`...).

Each question goes through `pipeline.draft_answer`, the code that drafts a customer's reply,
without a conversation: nothing is stored, sent or counted. An answer is

- right: it contains the expected fact;
- wrong: it does not (an answer from the wrong entry), or it answers an out-of-knowledge
  question (expected `none`);
- abstained: the bot said it does not know, or handed over to a person.

`evaluate` returns the rates overall and per language label, latencies, and a suggested
confidence threshold for this client's own data: the lowest one at which no wrong answer in
the set would have been given.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from conversations import pipeline
from conversations.models import AnswerEvaluation
from wafaa.errors import ApplicationError
from wafaa.text import normalize

MAX_QUESTIONS = 500
# 500 questions of at most 1,000 characters, with room for the expected facts.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_QUESTION_CHARS = 1000


class EvaluationFileError(ApplicationError):
    code = "evaluation_file_invalid"
    status_code = 400


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    expected: tuple[str, ...]  # empty: out of knowledge (the right reply is to abstain)
    language: str = ""

    @property
    def in_knowledge(self) -> bool:
        return bool(self.expected)


@dataclass
class EvalResult:
    question: str
    language: str
    expected: list[str]
    verdict: str  # right | wrong | abstained
    outcome: str
    reply: str
    confidence: float | None
    latency_ms: float
    # Would the answer (given a low enough threshold) have been right? None: no candidate.
    candidate_right: bool | None = None
    # Error analysis: the rank (1 = first) of the best entry holding the expected fact among
    # the entries weighed (None: not among them), why a question failed, and the decision.
    right_rank: int | None = None
    failure: str = ""
    assessed: list[dict] = field(default_factory=list)


@dataclass
class Evaluation:
    results: list[EvalResult] = field(default_factory=list)
    threshold: float | None = None

    def summary(self) -> dict:
        return {
            "overall": _rates(self.results),
            "failures": dict(sorted(Counter(r.failure for r in self.results if r.failure).items())),
            "languages": {
                language: _rates([r for r in self.results if r.language == language])
                for language in sorted({r.language for r in self.results})
            },
            "threshold": self.threshold,
            "suggested_threshold": suggest_threshold(self.results),
        }

    def as_dict(self) -> dict:
        return {**self.summary(), "results": [asdict(r) for r in self.results]}


# --------------------------------------------------------------------------------------------
# Reading a question set
# --------------------------------------------------------------------------------------------


def parse_questions(data: bytes | str, *, filename: str = "") -> list[EvalQuestion]:
    """Questions from CSV (header: question, expected[, language]) or JSONL."""
    if len(data) > MAX_FILE_BYTES:
        raise EvaluationFileError(
            f"The question file is over {MAX_FILE_BYTES // (1024 * 1024)} MB; "
            f"an evaluation takes at most {MAX_QUESTIONS} questions."
        )
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    except UnicodeDecodeError:
        raise EvaluationFileError("The question file must be UTF-8 text.") from None
    if "\x00" in text:
        raise EvaluationFileError("The question file holds NUL characters: it is not text.")
    stripped = text.lstrip()
    if filename.endswith((".jsonl", ".json")) or stripped.startswith("{"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise EvaluationFileError(f"Line {number} is not valid JSON.") from None
            if not isinstance(row, dict):
                raise EvaluationFileError(f"Line {number} is not a JSON object.")
            rows.append(row)
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:
            raise EvaluationFileError(f"The CSV could not be read ({exc}).") from None
        if rows and "question" not in {(k or "").strip().lower() for k in rows[0]}:
            raise EvaluationFileError("The CSV needs a header row with question and expected.")
    questions = []
    for row in rows:
        row = {str(k).strip().lower(): v for k, v in row.items() if k}
        question = str(row.get("question") or "").strip()
        if not question:
            continue
        expected = str(row.get("expected") or "").strip()
        facts = (
            ()
            if expected.lower() in ("", "none")
            else tuple(fact.strip() for fact in expected.split("|") if fact.strip())
        )
        language = str(row.get("language") or "").strip()[:20]
        questions.append(EvalQuestion(question[:MAX_QUESTION_CHARS], facts, language))
    if not questions:
        raise EvaluationFileError("No questions found: one question per row or line.")
    if len(questions) > MAX_QUESTIONS:
        raise EvaluationFileError(f"At most {MAX_QUESTIONS} questions per evaluation.")
    return questions


def questions_from_items(items: list[dict]) -> list[EvalQuestion]:
    """Questions from the API's JSON list ({question, expected: [...], language})."""
    questions = []
    for item in items:
        facts = tuple(f.strip() for f in item.get("expected") or () if f.strip())
        if [f.lower() for f in facts] == ["none"]:
            facts = ()
        questions.append(EvalQuestion(item["question"].strip(), facts, item.get("language", "")))
    if len(questions) > MAX_QUESTIONS:
        raise EvaluationFileError(f"At most {MAX_QUESTIONS} questions per evaluation.")
    return questions


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


# Arabic writes "and", "with", "for", "like", "so" as one-letter prefixes of the next word:
# "بالبطاقة البنكية" (by bank card) states "البطاقة البنكية".
_ARABIC_PROCLITICS = "(?:[\u0648\u0641]?[\u0628\u0643\u0644]?)"


def contains_fact(text: str, facts: tuple[str, ...] | list[str]) -> bool:
    """Does `text` state one of `facts` (whole words, after normalisation; an Arabic fact
    may carry a proclitic)?"""
    haystack = normalize(text)
    for fact in facts:
        wanted = normalize(fact)
        prefix = _ARABIC_PROCLITICS if re.match("[\u0600-\u06ff]", wanted) else ""
        pattern = r"(?<!\w)" + prefix + re.escape(wanted) + r"(?!\w)"
        if re.search(pattern, haystack):
            return True
    return False


def evaluate(
    *,
    client,
    questions: list[EvalQuestion],
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Draft a reply to each question in the current client schema and judge it."""
    evaluation = Evaluation(threshold=client.confidence_threshold)
    for index, item in enumerate(questions, start=1):
        started = time.perf_counter()
        draft = pipeline.draft_answer(
            client=client,
            question=item.question,
            language=pipeline.question_language(client, item.question),
        )
        latency_ms = (time.perf_counter() - started) * 1000
        evaluation.results.append(_judge(item, draft, latency_ms))
        if progress:
            progress(index, len(questions))
    return evaluation


def _judge(item: EvalQuestion, draft, latency_ms: float) -> EvalResult:
    answered = draft.outcome == "answered"
    right = answered and item.in_knowledge and contains_fact(draft.text, item.expected)
    verdict = "right" if right else "wrong" if answered else "abstained"
    candidate = getattr(draft, "candidate", "") or (draft.text if answered else "")
    candidate_right = None
    if candidate:
        candidate_right = item.in_knowledge and contains_fact(candidate, item.expected)
    assessed = list(getattr(draft, "assessed", None) or [])
    right_rank = _right_rank(item, assessed)
    return EvalResult(
        question=item.question,
        language=item.language,
        expected=list(item.expected),
        verdict=verdict,
        outcome=draft.outcome,
        reply=draft.text,
        confidence=None if draft.confidence is None else round(draft.confidence, 4),
        latency_ms=round(latency_ms, 1),
        candidate_right=candidate_right,
        right_rank=right_rank,
        failure=_failure(item, verdict, right_rank, candidate_right),
        assessed=assessed,
    )


def _right_rank(item: EvalQuestion, assessed: list[dict]) -> int | None:
    """Rank of the first weighed entry (of the question's best-ranked part) that states the
    expected fact in any of its language versions."""
    if not item.in_knowledge or not assessed:
        return None
    ranks = []
    for part in assessed:
        for rank, entry in enumerate(part.get("entries") or [], start=1):
            if contains_fact(" ".join([entry["text"], *entry["answers"]]), item.expected):
                ranks.append(rank)
                break
    return min(ranks) if ranks else None


# Why a question failed (empty: it did not):
# - answered_out_of_knowledge: an answer to a question the knowledge does not cover;
# - retrieval_miss: no weighed entry states the fact;
# - ranked_lower: an entry states it, but another was ranked first (answered or abstained);
# - abstained_right_first: the right entry was first but the confidence was too low;
# - wrong_version: the right entry answered, in a language version without the fact;
# - handoff: the question was read as a request for a person.
def _failure(item: EvalQuestion, verdict: str, right_rank, candidate_right) -> str:
    if not item.in_knowledge:
        return "answered_out_of_knowledge" if verdict == "wrong" else ""
    if verdict == "right":
        return ""
    if right_rank is None:
        return "retrieval_miss"
    if right_rank > 1:
        return "ranked_lower"
    if verdict == "abstained":
        return "abstained_right_first" if candidate_right is not False else "wrong_version"
    return "wrong_version"


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def _rates(results: list[EvalResult]) -> dict:
    known = [r for r in results if r.expected]
    unknown = [r for r in results if not r.expected]
    right = sum(r.verdict == "right" for r in known)
    wrong = sum(r.verdict == "wrong" for r in results)

    def share(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    latencies = [r.latency_ms for r in results]
    return {
        "questions": len(results),
        "in_knowledge": len(known),
        "out_of_knowledge": len(unknown),
        "right_rate": share(right, len(known)),
        "abstain_rate": share(sum(r.verdict == "abstained" for r in known), len(known)),
        "wrong_rate": share(wrong, len(results)),
        "wrong_in_knowledge": sum(r.verdict == "wrong" for r in known),
        "answered_out_of_knowledge": sum(r.verdict == "wrong" for r in unknown),
        "latency_ms_p50": _percentile(latencies, 0.5),
        "latency_ms_p95": _percentile(latencies, 0.95),
    }


# A wrong answer costs this many right ones when the threshold is chosen.
WRONG_ANSWER_COST = 5


def suggest_threshold(results: list[EvalResult]) -> dict | None:
    """The confidence threshold that suits this set: no out-of-knowledge question answered,
    then the most right answers less WRONG_ANSWER_COST per wrong one (the lowest such
    threshold). With the rates it would give on these questions."""
    scored = [r for r in results if r.confidence is not None and r.candidate_right is not None]
    if not scored:
        return None
    out_of_knowledge = [r.confidence for r in scored if not r.expected]
    floor = round(max(out_of_knowledge) + 0.01, 2) if out_of_knowledge else 0.0
    known = [r for r in scored if r.expected]
    # Candidate thresholds: the floor, each answer's confidence, and just above each wrong one.
    points = [r.confidence for r in known] + [
        r.confidence + 0.01 for r in known if not r.candidate_right
    ]
    options = sorted({floor, *(round(p, 2) for p in points if p >= floor)})
    best = None
    for threshold in options:
        given = [r for r in known if r.confidence >= threshold]
        right = sum(1 for r in given if r.candidate_right)
        value = right - WRONG_ANSWER_COST * (len(given) - right)
        if best is None or value > best[0]:
            best = (value, threshold, right, len(given) - right)
    total = len([r for r in results if r.expected])
    _, threshold, right, wrong = best
    return {
        "threshold": min(1.0, threshold),
        "right_rate": round(right / total, 4) if total else None,
        "wrong_answers": wrong,
    }


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def format_failures(results: list[EvalResult]) -> str:
    """One block per failed question: its verdict, why, and the entries weighed first."""
    lines = []
    for r in results:
        if not r.failure:
            continue
        lines.append(
            f"[{r.language}] {r.question!r} expected {'|'.join(r.expected) or 'none'}: "
            f"{r.failure} (confidence {r.confidence}, right entry rank {r.right_rank})"
        )
        for part in r.assessed:
            features = " ".join(f"{k}={v}" for k, v in part["features"].items())
            lines.append(f"    part {part['question']!r} conf={part['confidence']} {features}")
            for entry in part["entries"]:
                lines.append(
                    f"      sim={entry['similarity']:.3f} ovl={entry['overlap']:.3f} "
                    f"kw={entry['keyword']:.3f} score={entry['score']:.3f} "
                    f"{entry['text'][:70]!r}"
                )
    return "\n".join(lines)


def format_table(summary: dict, *, title: str = "") -> str:
    """The summary as a fixed-width table (one row per language label, then all)."""

    def pct(value) -> str:
        return "   -" if value is None else f"{value * 100:5.1f}%"

    lines = [title] if title else []
    header = (
        f"{'language':<12} {'n':>4} {'known':>5} {'right':>7} {'abstain':>8} {'wrong':>7} "
        f"{'ook':>4} {'ook ans':>7} {'p50 ms':>7} {'p95 ms':>7}"
    )
    lines += [header, "-" * len(header)]
    rows = [*summary["languages"].items(), ("all", summary["overall"])]
    for language, r in rows:
        lines.append(
            f"{language or '-':<12} {r['questions']:>4} {r['in_knowledge']:>5} "
            f"{pct(r['right_rate']):>7} {pct(r['abstain_rate']):>8} {pct(r['wrong_rate']):>7} "
            f"{r['out_of_knowledge']:>4} {r['answered_out_of_knowledge']:>7} "
            f"{r['latency_ms_p50'] or 0:>7.1f} {r['latency_ms_p95'] or 0:>7.1f}"
        )
    if summary.get("failures"):
        counts = ", ".join(f"{k} {v}" for k, v in summary["failures"].items())
        lines.append(f"failures: {counts}")
    suggestion = summary.get("suggested_threshold")
    lines.append(f"threshold in use: {summary.get('threshold')}")
    if suggestion:
        lines.append(
            f"suggested threshold: {suggestion['threshold']} "
            f"(right rate there: {pct(suggestion['right_rate']).strip()})"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Runs through the API (stored, run by a worker)
# --------------------------------------------------------------------------------------------


def evaluation_start(*, questions: list[EvalQuestion], created_by_email: str = ""):
    """Store a run (status `pending`) in the current client schema; a worker runs it."""
    from conversations.tasks import answer_evaluation_run_task  # the tasks import this module

    run = AnswerEvaluation.objects.create(
        questions=[asdict(q) for q in questions],
        total=len(questions),
        created_by_email=created_by_email[:254],
    )
    schema, run_id = connection.schema_name, str(run.pk)
    transaction.on_commit(
        lambda: answer_evaluation_run_task.apply_async((run_id,), headers={"_schema_name": schema})
    )
    return run


def evaluation_run(*, evaluation_id) -> str:
    """Run a stored evaluation (the task's service). Safe to run twice: a finished run is
    left alone, an interrupted one starts over."""
    run = AnswerEvaluation.objects.filter(pk=evaluation_id).first()
    if run is None:
        return "missing"
    if run.status in (AnswerEvaluation.Status.DONE, AnswerEvaluation.Status.FAILED):
        return run.status
    AnswerEvaluation.objects.filter(pk=run.pk).update(
        status=AnswerEvaluation.Status.RUNNING, done=0, updated_at=timezone.now()
    )
    questions = [
        EvalQuestion(q["question"], tuple(q.get("expected") or ()), q.get("language") or "")
        for q in run.questions
    ]

    def progress(done: int, total: int) -> None:
        AnswerEvaluation.objects.filter(pk=run.pk).update(done=done, updated_at=timezone.now())

    try:
        result = evaluate(client=connection.tenant, questions=questions, progress=progress)
    except Exception as exc:
        AnswerEvaluation.objects.filter(pk=run.pk).update(
            status=AnswerEvaluation.Status.FAILED,
            error=f"The evaluation stopped: {type(exc).__name__}.",
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        raise
    AnswerEvaluation.objects.filter(pk=run.pk).update(
        status=AnswerEvaluation.Status.DONE,
        result=result.as_dict(),
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return "done"
