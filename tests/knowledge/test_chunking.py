"""Chunking: FAQ pairs stay whole, headings travel with their text, sizes and overlap hold."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from knowledge.chunking import chunk_document, estimate_tokens, split_sentences
from knowledge.extraction import ExtractedDocument, Section, detect_kind, extract

FIXTURES = Path(__file__).parent / "fixtures"


def chunks_of(name: str, **kwargs):
    data = (FIXTURES / name).read_bytes()
    return chunk_document(extract(data, detect_kind(data, name)), **kwargs)


def doc_of(*sections: Section, faq_pairs=()) -> ExtractedDocument:
    text = "\n\n".join(s.text for s in sections)
    return ExtractedDocument(
        kind="txt", text=text, sections=list(sections), faq_pairs=list(faq_pairs)
    )


def long_text(
    sentences: int, template: str = "Sentence {i} explains one more policy detail."
) -> str:
    return " ".join(template.format(i=i) for i in range(sentences))


def test_each_csv_pair_is_exactly_one_chunk():
    chunks = chunks_of("faq.csv")
    assert [c.text for c in chunks] == [
        "Q: How long does delivery take?\nA: 2 to 4 working days, anywhere in Morocco.",
        "Q: ما هي طرق الدفع؟\nA: الدفع عند الاستلام أو بالبطاقة.",
    ]
    assert chunks[0].metadata == {
        "kind": "faq",
        "question": "How long does delivery take?",
        "entry": 1,
    }
    assert [c.ordinal for c in chunks] == [0, 1]


def test_a_bilingual_csv_row_is_one_chunk_per_language_sharing_the_entry_and_its_answers():
    csv_text = (
        "Question (EN),Answer (EN),question_ar,answer_ar,Notes\n"
        "Do you deliver?,Yes within 5 km.,هل توصلون؟,نعم داخل 5 كلم.,internal note\n"
        "Is there parking?,,هل يوجد موقف؟,نعم أمام المحل.,\n"
        ",,,,only a note\n"
    )
    document = extract(csv_text.encode(), "csv")
    chunks = chunk_document(document)
    assert [c.text for c in chunks] == [
        "Q: Do you deliver?\nA: Yes within 5 km.",
        "Q: هل توصلون؟\nA: نعم داخل 5 كلم.",
        "Q: هل يوجد موقف؟\nA: نعم أمام المحل.",  # the English half is incomplete: left out
    ]
    assert chunks[1].metadata == {
        "kind": "faq",
        "question": "هل توصلون؟",
        "entry": 1,
        "language": "ar",
        "answers": {"en": "Yes within 5 km.", "ar": "نعم داخل 5 كلم."},
    }
    assert chunks[2].metadata["entry"] == 2 and chunks[2].metadata["language"] == "ar"
    assert "internal note" not in document.text
    assert document.warnings == ["1 row(s) without both a question and an answer were skipped."]


def test_question_answer_lines_in_text_are_kept_whole_and_apart():
    chunks = chunks_of("faq.txt")
    faqs = [c for c in chunks if c.metadata["kind"] == "faq"]
    assert [c.metadata["question"] for c in faqs] == [
        "How long does delivery take?",
        "Can I pay cash on delivery?",
        "Do you ship abroad?",
    ]
    # A multi-line answer stays with its question, and prose after the last pair is not
    # swallowed into that answer.
    assert faqs[1].text == (
        "Q: Can I pay cash on delivery?\n"
        "A: Yes, cash on delivery is available in every city.\n"
        "You can also pay by card on our website."
    )
    assert chunks[-1].metadata["kind"] == "text"
    assert chunks[-1].text == "Our team answers messages every day from 9:00 to 19:00."


def test_bold_questions_in_markdown_become_faq_chunks_under_their_heading():
    chunks = chunks_of("guide.md")
    faqs = [c for c in chunks if c.metadata["kind"] == "faq"]
    assert [c.metadata["question"] for c in faqs] == [
        "Can I exchange a size?",
        "Do you have gift cards?",
    ]
    assert faqs[0].text.startswith("Q: Can I exchange a size?\nA: Yes. Exchanges of size are free")
    assert faqs[0].metadata["heading"] == "Questions"


def test_text_chunks_carry_their_heading_in_metadata_and_text():
    chunks = chunks_of("handbook.docx")
    prices = next(c for c in chunks if c.metadata.get("heading") == "Prices")
    assert prices.metadata["heading_path"] == ["Store handbook", "Prices"]
    assert prices.text.startswith("Store handbook \u203a Prices\n\n")
    assert "Runner X | 450 MAD" in prices.text


def test_pdf_chunks_know_their_page():
    chunks = chunks_of("policy.pdf")
    assert [c.metadata["page"] for c in chunks] == [1, 2]


def test_a_section_titled_with_a_question_is_one_faq_chunk():
    doc = doc_of(Section("Do you deliver on Sundays?", "No, only Monday to Saturday."))
    (chunk,) = chunk_document(doc)
    assert chunk.text == "Q: Do you deliver on Sundays?\nA: No, only Monday to Saturday."
    assert chunk.metadata["kind"] == "faq"


def test_qa_pairs_with_arabic_markers_are_detected():
    body = "س: هل التوصيل مجاني؟\nج: نعم، للطلبات فوق 500 درهم.\n\nس: متى تفتحون؟\nج: من التاسعة."
    chunks = chunk_document(doc_of(Section(None, body)))
    assert [c.metadata["question"] for c in chunks] == ["هل التوصيل مجاني؟", "متى تفتحون؟"]
    assert chunks[0].text == "Q: هل التوصيل مجاني؟\nA: نعم، للطلبات فوق 500 درهم."


def test_a_long_section_is_split_within_max_tokens_with_overlap():
    body = "\n\n".join(
        long_text(30, f"Paragraph {p} sentence {{i}} about returns.") for p in range(8)
    )
    doc = doc_of(Section("Returns", body, heading_path=("Returns",)))
    chunks = chunk_document(doc, target_tokens=200, max_tokens=250, overlap_tokens=40)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.token_count == estimate_tokens(chunk.text)
        assert chunk.token_count <= 250
        assert chunk.text.startswith("Returns\n\n")
        assert chunk.metadata == {
            "section": 0,
            "heading": "Returns",
            "heading_path": ["Returns"],
            "kind": "text",
        }
    for previous, current in pairwise(chunks):
        last_sentence = split_sentences(previous.text)[-1]
        assert last_sentence in current.text, "consecutive chunks should overlap"
    # Nothing is lost: every sentence appears in some chunk.
    everything = " ".join(c.text for c in chunks)
    assert all(s in everything for s in split_sentences(body))


def test_an_arabic_paragraph_is_split_on_arabic_sentence_ends():
    body = " ".join(
        f"هل يمكنني إرجاع الطلب رقم {i}؟ نعم يمكنك ذلك خلال ثلاثين يوما." for i in range(80)
    )
    chunks = chunk_document(doc_of(Section(None, body)), target_tokens=120, max_tokens=150)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.token_count <= 150
        assert chunk.text.endswith(("؟", "."))


def test_a_paragraph_without_punctuation_is_split_on_words():
    body = " ".join(f"word{i}" for i in range(2000))
    chunks = chunk_document(doc_of(Section(None, body)), target_tokens=100, max_tokens=120)
    assert all(c.token_count <= 120 for c in chunks)
    assert "word1999" in chunks[-1].text


def test_small_paragraphs_are_merged_up_to_the_target():
    body = "\n\n".join(f"Short note number {i}." for i in range(10))
    (chunk,) = chunk_document(doc_of(Section(None, body)))
    assert chunk.text.count("Short note") == 10


def test_a_long_faq_answer_is_never_split():
    answer = long_text(200)
    doc = doc_of(faq_pairs=[("What is the full policy?", answer)])
    (chunk,) = chunk_document(doc, target_tokens=100, max_tokens=120)
    assert chunk.text == f"Q: What is the full policy?\nA: {answer}"


def test_overlap_does_not_cross_a_faq_pair():
    before = long_text(40, "Intro sentence {i} is here.")
    body = f"{before}\n\nQ: Is it free?\nA: Yes.\n\n{long_text(40, 'Outro sentence {i} is here.')}"
    chunks = chunk_document(doc_of(Section(None, body)), target_tokens=100, max_tokens=130)
    faq_index = next(i for i, c in enumerate(chunks) if c.metadata["kind"] == "faq")
    after = chunks[faq_index + 1]
    assert "Intro" not in after.text


def test_repeated_text_is_chunked_once():
    doc = doc_of(
        Section(None, "Call us on 0522 00 00 00.", page=1),
        Section(None, "Call us on 0522 00 00 00.", page=2),
    )
    assert len(chunk_document(doc)) == 1


def test_token_estimate_is_close_to_words_for_english_and_higher_for_long_words():
    assert estimate_tokens("How long does delivery take?") == 7  # cl100k: 6
    assert estimate_tokens("") == 0
    assert estimate_tokens("internationalisation") == 5


@pytest.mark.parametrize(("target", "maximum", "overlap"), [(0, 10, 0), (20, 10, 0), (10, 20, 10)])
def test_inconsistent_sizes_are_refused(target, maximum, overlap):
    with pytest.raises(ValueError):
        chunk_document(
            doc_of(Section(None, "x")),
            target_tokens=target,
            max_tokens=maximum,
            overlap_tokens=overlap,
        )
