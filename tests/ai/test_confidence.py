"""Calibrated confidence (pure): entries, margins, words across spellings, dialects, Arabizi."""

from __future__ import annotations

from wafaa.ai import confidence
from wafaa.ai.confidence import Candidate, assess, expand_query, transliterate_arabizi


def faq(question, answer, entry, *, similarity, language="en", answers=None, keyword=0.1):
    return Candidate(
        text=f"Q: {question}\nA: {answer}",
        metadata={
            "kind": "faq",
            "question": question,
            "entry": entry,
            "language": language,
            "answers": answers or {language: answer},
        },
        similarity=similarity,
        keyword=keyword,
        key=f"doc:{entry}",
    )


HOURS_EN = faq("What are your opening hours?", "Every day 8am to 10pm.", 1, similarity=0.62)
HOURS_AR = faq(
    "ما هي مواعيد العمل؟", "كل يوم من 8 صباحا إلى 10 ليلا.", 1, similarity=0.55, language="ar"
)
PRICE = faq("How much is a cappuccino?", "A cappuccino costs 18 MAD.", 2, similarity=0.30)
DELIVERY = faq("Do you deliver?", "Yes, within 5 km.", 3, similarity=0.25)


def test_language_versions_of_one_entry_do_not_count_as_a_competing_entry():
    result = assess("When are you open?", [HOURS_EN, HOURS_AR, PRICE], language="en")
    assert result.best is HOURS_EN
    assert [s.candidate.key for s in result.ranked] == ["doc:1", "doc:2"]
    # The margin is measured against the price entry, not the Arabic version of the same row.
    assert result.features["similarity_margin"] > 0.3


def test_a_matching_question_is_confident_and_a_question_about_something_else_is_not():
    sure = assess("what are your opening hours", [HOURS_EN, PRICE, DELIVERY], language="en")
    assert sure.confidence >= confidence.DEFAULT_THRESHOLD
    unknown = Candidate(**{**PRICE.__dict__, "similarity": 0.3})
    other = assess("Do you sell bicycles?", [unknown, DELIVERY], language="en")
    assert other.features["unknown"] > 0.5  # "sell" and "bicycles" are found nowhere
    assert other.confidence < confidence.DEFAULT_THRESHOLD
    assert assess("anything", []).confidence == 0.0


def test_typos_and_variant_spellings_still_overlap():
    exact = assess("opening hours", [HOURS_EN, PRICE], language="en").features["overlap"]
    typo = assess("openin hourz", [HOURS_EN, PRICE], language="en").features["overlap"]
    assert exact == 1.0 and typo > 0.4
    arabic = assess("مواعيد العمل", [HOURS_AR, PRICE], language="ar")
    assert arabic.best is HOURS_AR and arabic.features["overlap"] == 1.0


def test_arabizi_and_dialect_words_reach_the_standard_words():
    assert transliterate_arabizi("se3r") == "سعر"
    assert transliterate_arabizi("a7jez") == "احجز"
    assert "سعر" in expand_query("شحال الثمن؟") and "اين" in expand_query("فين المحل")
    price_ar = faq("كم سعر الكابتشينو؟", "الكابتشينو 18 درهم.", 2, similarity=0.2, language="ar")
    hours = Candidate(**{**HOURS_AR.__dict__, "similarity": 0.15})
    result = assess("kam se3r el cappuccino", [price_ar, hours], language="ar")
    assert result.best is price_ar and result.features["overlap"] > 0.5
