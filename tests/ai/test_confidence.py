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


def test_dialect_and_arabizi_questions_get_a_standard_variant():
    # Egyptian present marker and plural ending, Gulf and Maghrebi question words, Arabizi
    # words written in Arabic script with their article.
    assert confidence.standardise("بتصلحوا العربية؟") == "تصلحون العربيه"
    assert confidence.standardise("وين مكانكم؟") == "اين اين"
    assert confidence.standardise("kam se3r el mandi?") == "كم سعر المندي"
    assert confidence.query_variants("momken a7jez tawla?") == [
        "momken a7jez tawla?",
        "ممكن حجز طاوله",
    ]
    # Nothing to standardise: one variant, the question itself.
    assert confidence.query_variants("What time do you close?") == ["What time do you close?"]


def test_similarity_to_the_faq_question_ranks_a_translated_question_first():
    # "¿Dónde están ubicados?" shares no word with either entry; its vector is closer to the
    # chunk about hours as a whole, but to the location entry's own question.
    where = faq("Where are you located?", "Marina Walk, Tower B.", 4, similarity=0.14)
    hours = faq("What are your opening hours?", "Every day 8am to 10pm.", 1, similarity=0.16)
    where.question_similarity, hours.question_similarity = 0.60, 0.30
    result = assess("¿Dónde están ubicados?", [hours, where], language="es")
    assert result.best is where
    assert result.features["question_margin"] > 0.25
    # Without the question similarity (not a FAQ chunk), the chunk similarity decides.
    where.question_similarity = hours.question_similarity = None
    assert assess("¿Dónde están ubicados?", [hours, where], language="es").best is hours


def test_word_coverage_counts_a_word_of_another_language_with_the_same_meaning():
    # Unit vectors standing for a multilingual model: "ubicados" means "located"; "braille"
    # means nothing the entry says.
    vectors = {
        "ubicados": (1.0, 0.0, 0.0),
        "located": (0.96, 0.28, 0.0),
        "braille": (0.0, 0.0, 1.0),
    }
    asked_for = []

    def word_vectors(question_words, entry_words):
        asked_for.append(list(question_words))
        return {w: vectors.get(w, (0.0, 1.0, 0.0)) for w in question_words + entry_words}

    where = faq("Where are you located?", "Marina Walk, Tower B.", 4, similarity=0.3)
    found = assess("ubicados", [where], language="es", word_vectors=word_vectors)
    assert found.features["coverage"] > 0.9
    lacking = assess("braille", [where], language="es", word_vectors=word_vectors)
    assert lacking.features["coverage"] < 0.1
    # A word the entry contains as such needs no vector.
    assess("located ubicados", [where], language="en", word_vectors=word_vectors)
    assert asked_for[-1] == ["ubicados"]
    # Without word vectors the coverage is the word match alone.
    assert assess("ubicados", [where], language="es").features["coverage"] == 0.0
