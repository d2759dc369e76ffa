"""The one text module: normalisation, words, sentences and truncation agree everywhere."""

from __future__ import annotations

import pytest

from conversations.handoff import asks_for_person
from tenants.models import default_handoff_keywords
from wafaa.text import STOPWORDS, content_words, normalize, split_sentences, truncate, words


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("خدمه العملاء", "خدمة العملاء"),  # ta marbuta written as ha
        ("إنسان", "انسان"),  # hamza under alef
        ("أحمد", "احمد"),
        ("آمنة", "امنه"),
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("مـــرحبا", "مرحبا"),  # tatweel
        ("مَرْحَبًا", "مرحبا"),  # diacritics
        ("٣٠ درهم", "30 درهم"),  # Arabic-Indic digits
        ("۱۲۵", "125"),  # Persian digits
        ("کیک", "كيك"),  # Persian keheh and yeh
        ("CAFÉ", "café"),
    ],
)
def test_spelling_variants_normalise_alike(a, b):
    assert normalize(a) == normalize(b)


def test_words_and_content_words():
    assert words("Où est la livraison ? ٣ أيام") == ["ou", "est", "la", "livraison", "3", "ايام"]
    assert content_words("What are your opening hours?") == ["opening", "hours"]
    assert content_words("what is it?") == ["what", "is", "it"]  # nothing else left: keep all
    assert "هل" in STOPWORDS and "wach" in STOPWORDS


def test_sentences_split_on_latin_and_arabic_punctuation_and_optionally_lines():
    text = 'He said "yes." Then left! هل تفتحون؟ نعم.\nNext line'
    expected = ['He said "yes."', "Then left!", "هل تفتحون؟", "نعم.", "Next line"]
    assert split_sentences(text) == expected
    assert split_sentences("one\ntwo. three") == ["one\ntwo.", "three"]
    assert split_sentences("one\ntwo. three", lines=True) == ["one", "two.", "three"]


def test_truncate_prefers_sentence_ends_then_words_and_never_exceeds_the_limit():
    text = "First sentence here. Second sentence is a lot longer than the first one."
    assert truncate(text, 200) == text
    assert truncate(text, 40, prefer_sentence=True) == "First sentence here."
    cut = truncate(text, 40)
    assert cut.endswith("…") and len(cut) <= 40 and cut[:-1] == text[: len(cut) - 1].rstrip()
    assert " " not in truncate("x" * 100, 10)[:-1] and len(truncate("x" * 100, 10)) == 10
    assert len(truncate(text, 30, ellipsis="")) <= 30


def test_handoff_keyword_matches_a_variant_spelling():
    keywords = default_handoff_keywords()
    assert asks_for_person("ممكن اكلم خدمه العملاء؟", keywords)
    assert asks_for_person("أريد التحدث مع إنسان", keywords)
    assert not asks_for_person("كم سعر الخدمة؟", keywords)
