"""Extraction: every supported format read with its structure, every bad file refused by code."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from knowledge.extraction import (
    ExtractionError,
    Limits,
    detect_kind,
    extract,
    normalize_text,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str):
    data = (FIXTURES / name).read_bytes()
    return extract(data, detect_kind(data, name, None))


def refusal(data: bytes, filename: str, content_type: str | None = None) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract(data, detect_kind(data, filename, content_type))
    return caught.value


# ---- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("faq.txt", "txt"),
        ("arabic_utf16.txt", "txt"),
        ("guide.md", "md"),
        ("page.html", "html"),
        ("policy.pdf", "pdf"),
        ("owner_only_encrypted.pdf", "pdf"),
        ("handbook.docx", "docx"),
        ("faq.csv", "csv"),
    ],
)
def test_each_supported_format_is_detected_by_its_content(name, kind):
    data = (FIXTURES / name).read_bytes()
    assert detect_kind(data, name, None) == kind
    assert extract(data, kind).text.strip()


def test_plain_text_keeps_its_lines_and_paragraphs():
    doc = load("faq.txt")
    assert doc.kind == "txt"
    assert "Q: How long does delivery take?\nA: Delivery takes 2 to 4 working days" in doc.text
    assert len(doc.sections) == 1 and doc.sections[0].heading is None


def test_utf16_text_with_a_bom_is_read():
    doc = load("arabic_utf16.txt")
    assert doc.text.startswith("مرحبا بكم في متجرنا.")


def test_markdown_headings_become_sections_with_their_path():
    doc = load("guide.md")
    headings = [s.heading for s in doc.sections]
    assert headings == ["Help centre", "Returns", "Questions", "Store hours", "الأسعار"]
    returns = doc.sections[1]
    assert returns.heading_path == ("Help centre", "Returns")
    assert "30 days of delivery" in returns.text
    assert doc.title == "Help centre"
    assert "title: Help centre" not in doc.text  # front matter dropped
    # A "#" inside a fenced code block is code, not a heading.
    assert "# not a heading: this is code" in doc.sections[3].text


def test_html_keeps_headings_and_drops_scripts_styles_and_navigation():
    doc = load("page.html")
    assert doc.title == "Atlas Shoes & Co — Help"
    assert [s.heading for s in doc.sections] == ["Help", "Delivery", "Prices"]
    assert doc.sections[0].text == "Welcome to our help page."
    delivery = doc.sections[1].text
    assert "We deliver in 2 to 4 working days.\nFree over 500 MAD." in delivery
    assert "- Casablanca: next day" in delivery
    assert "Model | Price\nRunner X | 450 MAD" in doc.sections[2].text
    for unwanted in ("tracking", "console.log", "font-family", "Shop"):
        assert unwanted not in doc.text


def test_pdf_text_is_read_page_by_page():
    doc = load("policy.pdf")
    assert doc.page_count == 2
    assert [s.page for s in doc.sections] == [1, 2]
    assert "within 30 days of delivery" in doc.sections[0].text
    assert "free for orders over 500 MAD" in doc.sections[1].text


def test_pdf_encrypted_only_with_an_owner_password_opens():
    doc = load("owner_only_encrypted.pdf")
    assert "within 30 days of delivery" in doc.text


def test_docx_headings_lists_and_tables_are_kept():
    doc = load("handbook.docx")
    assert doc.title == "Store handbook"
    by_heading = {s.heading: s for s in doc.sections}
    assert "- Closed on public holidays." in by_heading["Opening hours"].text
    assert by_heading["Prices"].text == "Model | Price\nRunner X | 450 MAD\nTrail Pro | 780 MAD"
    arabic = by_heading["التوصيل"]
    assert arabic.heading_path == ("Store handbook", "Prices", "التوصيل")
    assert "جميع المدن المغربية" in arabic.text


def test_csv_rows_become_question_answer_pairs():
    doc = load("faq.csv")
    assert doc.faq_pairs == [
        ("How long does delivery take?", "2 to 4 working days, anywhere in Morocco."),
        ("ما هي طرق الدفع؟", "الدفع عند الاستلام أو بالبطاقة."),
    ]
    assert doc.warnings == ["2 row(s) without both a question and an answer were skipped."]
    assert "Q: How long does delivery take?\nA: 2 to 4 working days" in doc.text


def test_csv_with_semicolons_and_arabic_headers_is_read():
    data = "السؤال;الجواب\nمتى تفتحون؟;من التاسعة صباحا\n".encode()
    doc = extract(data, detect_kind(data, "faq.csv", "text/csv"))
    assert doc.faq_pairs == [("متى تفتحون؟", "من التاسعة صباحا")]


def test_html_without_an_extension_is_sniffed():
    data = b"<!DOCTYPE html><html><body><h1>Hi</h1><p>Open daily.</p></body></html>"
    assert detect_kind(data, "upload", None) == "html"


def test_a_pdf_named_txt_is_read_as_a_pdf():
    data = (FIXTURES / "policy.pdf").read_bytes()
    assert detect_kind(data, "policy.txt", "text/plain") == "pdf"


def test_normalisation_unifies_unicode_line_ends_spaces_and_blank_lines():
    text = "Cafe\u0301  au\t\tlait \r\nline two\r\n\r\n\r\n\r\n\r\nend\u00a0\u00a0here\ufeff"
    assert normalize_text(text) == "Café au lait\nline two\n\n\nend here"


# ---- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\t\n"])
def test_an_empty_file_is_refused(data):
    assert refusal(data, "notes.txt").code == "empty_file"


def test_binary_garbage_named_txt_is_refused():
    error = refusal((FIXTURES / "garbage.txt").read_bytes(), "garbage.txt")
    assert error.code == "not_text"
    assert "UTF-8" in error.message


def test_text_with_nul_bytes_is_refused():
    assert refusal(b"hello\x00world\x00" * 20, "notes.txt").code == "not_text"


def test_a_zip_renamed_docx_is_refused():
    error = refusal((FIXTURES / "renamed_zip.docx").read_bytes(), "renamed_zip.docx")
    assert error.code == "invalid_docx"
    assert "word/document.xml" in error.message


def test_a_text_file_named_docx_is_refused():
    assert refusal(b"just some text", "handbook.docx").code == "invalid_docx"


def test_a_file_named_pdf_that_is_not_a_pdf_is_refused():
    assert refusal(b"<html>not a pdf</html>", "policy.pdf").code == "invalid_pdf"


def test_a_password_protected_pdf_is_refused_by_extraction_not_by_detection():
    # Opening a PDF is not a cheap fact: the web request only checks the magic bytes.
    data = (FIXTURES / "encrypted.pdf").read_bytes()
    assert detect_kind(data, "encrypted.pdf", "application/pdf") == "pdf"
    with pytest.raises(ExtractionError) as caught:
        extract(data, "pdf")
    assert caught.value.code == "pdf_encrypted"
    assert "password" in caught.value.message


def test_a_scanned_pdf_without_text_is_refused_with_advice():
    data = (FIXTURES / "scanned.pdf").read_bytes()
    assert detect_kind(data, "scanned.pdf") == "pdf"
    with pytest.raises(ExtractionError) as caught:
        extract(data, "pdf")
    assert caught.value.code == "pdf_no_text"
    assert "no text layer" in caught.value.message


def test_a_csv_without_question_and_answer_columns_is_refused():
    error = refusal((FIXTURES / "bad_columns.csv").read_bytes(), "bad_columns.csv")
    assert error.code == "csv_missing_columns"
    assert "found: title, body" in error.message


def test_a_csv_with_headers_only_is_refused():
    assert refusal(b"question,answer\n,\n", "faq.csv").code == "csv_no_rows"


@pytest.mark.parametrize(
    ("data", "filename", "hint"),
    [
        (b"{}", "prices.json", ".json"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "menu.png", "Images"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32, "old.doc", ".docx"),
    ],
)
def test_unsupported_types_are_refused_with_what_to_do(data, filename, hint):
    error = refusal(data, filename)
    assert error.code == "unsupported_type"
    assert hint in error.message


def test_a_spreadsheet_is_refused_with_a_csv_hint():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    error = refusal(buffer.getvalue(), "faq.xlsx")
    assert error.code == "unsupported_type"
    assert "CSV" in error.message


# ---- caps (knowledge.extraction.Limits) -------------------------------------------------------


def capped(data: bytes, kind: str, **limits) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract(data, kind, Limits(**limits))
    return caught.value


def test_a_docx_with_more_xml_elements_than_the_cap_is_refused_while_streaming():
    data = (FIXTURES / "handbook.docx").read_bytes()
    assert capped(data, "docx", max_xml_elements=50).code == "too_many_xml_elements"
    assert extract(data, "docx", Limits(max_xml_elements=100_000)).title == "Store handbook"


def test_a_docx_inflating_past_the_cap_is_refused():
    data = (FIXTURES / "handbook.docx").read_bytes()
    assert capped(data, "docx", max_uncompressed_bytes=2000).code == "too_large_uncompressed"


def test_a_docx_part_with_a_dtd_is_refused_before_any_entity_is_expanded():
    from tests.security.crafted import docx_billion_laughs

    error = refusal(docx_billion_laughs(), "laughs.docx")
    assert error.code == "xml_forbidden"


def test_pdf_pages_over_the_cap_are_refused_by_the_declared_count_or_the_real_one():
    from tests.security.crafted import pdf_many_pages

    assert capped(pdf_many_pages(30), "pdf", max_pdf_pages=20).code == "too_many_pages"
    lying = pdf_many_pages(30, declared=1)
    assert capped(lying, "pdf", max_pdf_pages=20).code == "too_many_pages"


def test_csv_rows_over_the_cap_are_refused_by_detection_and_by_extraction():
    data = b"question,answer\n" + b"\n".join(b"q%d?,a" % i for i in range(30))
    with pytest.raises(ExtractionError) as caught:
        detect_kind(data, "faq.csv", "text/csv", Limits(max_rows=20))
    assert caught.value.code == "too_many_rows"
    assert capped(data, "csv", max_rows=20).code == "too_many_rows"
    assert len(extract(data, "csv", Limits(max_rows=30)).faq_pairs) == 30


def test_html_tags_and_characters_over_their_caps_are_refused():
    page = b"<html><body>" + b"<p>hi</p>" * 100 + b"</body></html>"
    assert capped(page, "html", max_xml_elements=50).code == "too_many_xml_elements"
    assert capped(b"word " * 100, "txt", max_characters=200).code == "too_many_characters"
