"""Turn an uploaded file into clean text with its structure (sections, pages, FAQ pairs).

Pure Python, no Django. Two entry points with different costs:
- `detect_kind` runs in the web request: it decides the type from the bytes and checks only
  cheap facts (magic bytes, a zip's central directory: entry count, declared sizes and
  compression ratios, a CSV's header and a row count that stops at the cap). It never
  inflates, parses XML or opens a PDF, so a bomb costs the web process nothing.
- `extract` runs in the ingest worker, in a child process with a memory ceiling
  (`knowledge.sandbox`): it streams and stops at hard caps (`Limits`: bytes inflated,
  XML/HTML elements, PDF pages, CSV rows, characters), whatever the file's headers claim.
Every refusal is an `ExtractionError` with a stable code and a message the uploader can act
on; the codes in `LIMIT_CODES` are files refused for their size or complexity.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import unicodedata
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser

KINDS = ("txt", "md", "html", "pdf", "docx", "csv")
TEXT_KINDS = ("txt", "md", "html", "csv")

# Error codes (stable: the API and the admin show them, tests assert them).
EMPTY_FILE = "empty_file"
UNSUPPORTED_TYPE = "unsupported_type"
NOT_TEXT = "not_text"
INVALID_DOCX = "invalid_docx"
INVALID_PDF = "invalid_pdf"
PDF_ENCRYPTED = "pdf_encrypted"
PDF_NO_TEXT = "pdf_no_text"
CSV_MISSING_COLUMNS = "csv_missing_columns"
CSV_NO_ROWS = "csv_no_rows"
INVALID_CSV = "invalid_csv"
# Size and complexity caps (the web answers 422, the worker fails the document with them).
TOO_MANY_ZIP_ENTRIES = "too_many_zip_entries"
SUSPICIOUS_COMPRESSION = "suspicious_compression"
TOO_LARGE_UNCOMPRESSED = "too_large_uncompressed"
TOO_MANY_XML_ELEMENTS = "too_many_xml_elements"
XML_FORBIDDEN = "xml_forbidden"
TOO_MANY_PAGES = "too_many_pages"
TOO_MANY_ROWS = "too_many_rows"
TOO_MANY_CHARACTERS = "too_many_characters"
TOO_MANY_CHUNKS = "too_many_chunks"
LIMIT_CODES = frozenset(
    {
        TOO_MANY_ZIP_ENTRIES,
        SUSPICIOUS_COMPRESSION,
        TOO_LARGE_UNCOMPRESSED,
        TOO_MANY_XML_ELEMENTS,
        XML_FORBIDDEN,
        TOO_MANY_PAGES,
        TOO_MANY_ROWS,
        TOO_MANY_CHARACTERS,
        TOO_MANY_CHUNKS,
    }
)
# Entries smaller than this may compress at any ratio: a tiny XML part of repeated tags is
# normal, and inflating it costs nothing.
RATIO_MIN_BYTES = 1024 * 1024

_SUPPORTED = "TXT, Markdown, HTML, PDF, DOCX or a CSV of questions and answers"

_EXTENSIONS = {
    "txt": "txt",
    "text": "txt",
    "md": "md",
    "markdown": "md",
    "mdown": "md",
    "html": "html",
    "htm": "html",
    "xhtml": "html",
    "pdf": "pdf",
    "docx": "docx",
    "csv": "csv",
}
_CONTENT_TYPES = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/csv": "csv",
    "application/csv": "csv",
}
# Formats people commonly try, with what to do instead.
_UNSUPPORTED_HINTS = {
    "doc": "Legacy Word (.doc) files are not supported. Save it as .docx or PDF and upload again.",
    "xls": "Excel files are not supported. Export the sheet as CSV (question, answer columns).",
    "xlsx": "Excel files are not supported. Export the sheet as CSV (question, answer columns).",
    "ppt": "PowerPoint files are not supported. Export the slides as PDF and upload that.",
    "pptx": "PowerPoint files are not supported. Export the slides as PDF and upload that.",
    "image": "Images are not supported: Wafaa reads text only. Upload a document with text.",
}
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc/.xls/.ppt

_QUESTION_HEADERS = {"question", "questions", "q", "سؤال", "السؤال", "الأسئلة", "الاسئلة"}
_ANSWER_HEADERS = {
    "answer",
    "answers",
    "a",
    "جواب",
    "الجواب",
    "إجابة",
    "الإجابة",
    "اجابة",
    "الاجابة",
}


class ExtractionError(Exception):
    """A file we cannot read; `message` tells the uploader what to do about it."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ExtractionError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class Limits:
    """Hard caps of one extraction (defaults here; the service builds them from settings
    and the client's plan). Counted while reading, never taken from a file's own headers."""

    max_uncompressed_bytes: int = 64 * 1024 * 1024  # inflated from a zip, all parts together
    max_zip_entries: int = 1000
    max_compression_ratio: int = 100
    max_xml_elements: int = 2_000_000  # XML elements of a DOCX, or HTML tags
    max_pdf_pages: int = 2000
    max_rows: int = 10_000  # CSV data rows
    max_characters: int = 10_000_000  # extracted text


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Section:
    """A run of text under one heading (or one PDF page).

    `heading_path` holds the enclosing headings from the outermost down to `heading`, so a
    chunk of "Domestic" under "Shipping" can say so.
    """

    heading: str | None
    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass
class ExtractedDocument:
    kind: str
    text: str
    sections: list[Section] = field(default_factory=list)
    faq_pairs: list[tuple[str, str]] = field(default_factory=list)
    # Per FAQ pair, when the file says more than the pair (bilingual CSV rows): `entry` (the
    # row), `language` of this version and `answers` ({language: answer}) of the whole row.
    faq_meta: list[dict] = field(default_factory=list)
    title: str | None = None
    page_count: int | None = None
    # Things the uploader should know although the file was accepted (skipped pages, rows).
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

_SPACE_RUN = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_BLANK_LINES = re.compile(r"\n{4,}")
# Control characters other than newline/tab, plus BOM and soft hyphen: invisible noise that
# would otherwise end up in embeddings and in replies.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff\u00ad]")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalize_text(text: str) -> str:
    """NFC, \\n line ends, single spaces, no trailing spaces, at most two blank lines."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _INVISIBLE.sub("", text)
    text = _SPACE_RUN.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_BLANK_LINES.sub("\n\n\n", text)
    return text.strip()


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def detect_kind(
    data: bytes,
    filename: str,
    declared_content_type: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Return the kind of an upload ('txt', 'md', 'html', 'pdf', 'docx', 'csv') or refuse it.

    The file's bytes decide, the name and declared type only break ties: a PDF must start
    with %PDF, a DOCX must be a zip holding word/document.xml (its central directory within
    `limits`), text must be UTF-8 (or UTF-16 with a BOM) without binary noise, and a CSV
    must have question and answer columns and at most `limits.max_rows` rows.
    Cheap by design, for the web request: nothing is inflated, no PDF is opened, no XML is
    parsed; `extract` (in the worker) finds the rest, such as a scanned PDF.
    """
    if not data or not data.strip(b" \t\r\n\x00"):
        raise ExtractionError(EMPTY_FILE, "The file is empty. Upload a file with some text in it.")

    ext = filename.rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    content_type = (declared_content_type or "").split(";")[0].strip().lower()
    claimed = _EXTENSIONS.get(ext) or _CONTENT_TYPES.get(content_type)

    # PDF allows junk before the header, but text that merely mentions "%PDF-" must not
    # pass for a PDF: the header has to open the file unless the name says PDF.
    head = data[:1024]
    if head.lstrip()[:5] == b"%PDF-" or (claimed == "pdf" and b"%PDF-" in head):
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return _detect_zip(data, claimed, limits)
    if data[:8] == _OLE_MAGIC:
        hint = _UNSUPPORTED_HINTS.get(ext, _UNSUPPORTED_HINTS["doc"])
        raise ExtractionError(UNSUPPORTED_TYPE, hint)
    if claimed == "pdf":
        raise ExtractionError(
            INVALID_PDF,
            "This file is named .pdf but is not a PDF (it does not start with %PDF). "
            "Export it again as PDF.",
        )
    if claimed == "docx":
        raise ExtractionError(
            INVALID_DOCX,
            "This file is named .docx but is not a Word document. "
            "Save it from Word as .docx (or as PDF) and upload again.",
        )
    if any(data.startswith(magic) for magic in _IMAGE_MAGIC):
        raise ExtractionError(UNSUPPORTED_TYPE, _UNSUPPORTED_HINTS["image"])
    if claimed is None and ext:
        hint = _UNSUPPORTED_HINTS.get(ext, f"Files of type .{ext} are not supported.")
        raise ExtractionError(UNSUPPORTED_TYPE, f"{hint} Supported: {_SUPPORTED}.")

    text = decode_text(data)
    _check_characters(text, limits)
    if claimed == "csv":
        # The header now, and the rows counted up to the cap (nothing kept): a CSV without
        # question/answer columns or with too many rows is refused before it is stored.
        _csv_columns(text, limits)
        return "csv"
    if claimed:
        return claimed
    sniff = text[:1024].lstrip().lower()
    if sniff.startswith(("<!doctype html", "<html")) or "<body" in sniff:
        return "html"
    return "txt"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


def _zip_end_record(data: bytes) -> tuple[int, int] | None:
    """(entries, central directory size) declared by the End Of Central Directory record."""
    # The record is 22 bytes plus a comment of at most 65,535 bytes, at the end of the file.
    tail = data[-(22 + 65535) :]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    _, _, _, _, entries, directory_size, _, _ = struct.unpack("<4s4H2LH", tail[at : at + 22])
    return entries, directory_size


def check_zip_directory(data: bytes, limits: Limits = DEFAULT_LIMITS) -> zipfile.ZipFile:
    """Open a zip by its central directory only and refuse it when the directory says bomb.

    Entry count, each entry's declared uncompressed size against its compressed size (the
    ratio), and the declared total. Nothing is inflated here: the worker also counts the
    bytes it inflates (`_LimitedReader`), because a directory can lie.
    """
    end = _zip_end_record(data)
    # ~46 bytes per directory entry plus its name: a directory far larger than the entry cap
    # allows is refused before zipfile builds an object per entry.
    if end is not None and (
        end[0] > limits.max_zip_entries or end[1] > limits.max_zip_entries * 1024
    ):
        raise _too_many_entries(limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, struct.error):
        raise ExtractionError(INVALID_DOCX, _DOCX_DAMAGED_MESSAGE) from None
    infos = archive.infolist()
    if len(infos) > limits.max_zip_entries:
        raise _too_many_entries(limits)
    total = 0
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > RATIO_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise ExtractionError(
                SUSPICIOUS_COMPRESSION,
                f"The part {info.filename[:100]} of this file would inflate from "
                f"{_megabytes(info.compress_size)} to {_megabytes(info.file_size)} "
                f"(ratio {ratio:,.0f}:1; ordinary documents stay under "
                f"{limits.max_compression_ratio}:1). It was refused as a possible "
                "decompression bomb. Save the document again from Word, or upload a PDF.",
            )
        if total > limits.max_uncompressed_bytes:
            raise _too_large_uncompressed(limits)
    return archive


_DOCX_DAMAGED_MESSAGE = (
    "This Word document could not be opened (it may be damaged). "
    "Save it again from Word as .docx, or upload a PDF."
)


def _too_many_entries(limits: Limits) -> ExtractionError:
    return ExtractionError(
        TOO_MANY_ZIP_ENTRIES,
        f"This archive holds more than {limits.max_zip_entries:,} files; Word documents hold "
        "a few dozen. Save the document again from Word, or upload a PDF.",
    )


def _too_large_uncompressed(limits: Limits) -> ExtractionError:
    return ExtractionError(
        TOO_LARGE_UNCOMPRESSED,
        f"This document would inflate to more than {_megabytes(limits.max_uncompressed_bytes)}"
        " when unpacked, more than Wafaa reads from one file. Split it into smaller "
        "documents, or remove large embedded objects.",
    )


def _too_many_characters(limit: int) -> ExtractionError:
    return ExtractionError(
        TOO_MANY_CHARACTERS,
        f"This document holds more than {limit:,} characters of text, more than Wafaa "
        "indexes from one file. Split it into smaller documents.",
    )


def _check_characters(text: str, limits: Limits) -> None:
    if len(text) > limits.max_characters:
        raise _too_many_characters(limits.max_characters)


def _detect_zip(data: bytes, claimed: str | None, limits: Limits) -> str:
    try:
        names = set(check_zip_directory(data, limits).namelist())
    except ExtractionError as exc:
        if exc.code != INVALID_DOCX:
            raise
        names = set()  # not a readable zip: say what the name claimed it to be, below
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        raise ExtractionError(UNSUPPORTED_TYPE, _UNSUPPORTED_HINTS["xlsx"])
    if "ppt/presentation.xml" in names:
        raise ExtractionError(UNSUPPORTED_TYPE, _UNSUPPORTED_HINTS["pptx"])
    if claimed == "docx":
        raise ExtractionError(
            INVALID_DOCX,
            "This file is named .docx but is not a Word document (it is a zip archive without "
            "word/document.xml). Open it in Word and save it as .docx, or upload a PDF.",
        )
    raise ExtractionError(
        UNSUPPORTED_TYPE,
        f"Zip archives are not supported. Upload the documents one by one ({_SUPPORTED}).",
    )


def decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM allowed) or BOM-marked UTF-16, refusing binary content."""
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ExtractionError(
            NOT_TEXT,
            "This file is not readable text (it is not UTF-8). If it is a text file, save it "
            "with UTF-8 encoding; otherwise upload it as PDF or DOCX.",
        ) from None
    if "\x00" in text or _control_ratio(text) > 0.05:
        raise ExtractionError(
            NOT_TEXT,
            "This file looks binary, not text. Upload the original document (PDF, DOCX) or "
            "paste its text into a .txt file.",
        )
    if not text.strip():
        raise ExtractionError(EMPTY_FILE, "The file is empty. Upload a file with some text in it.")
    return text


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    noise = sum(
        1
        for ch in sample
        if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Co", "Cs", "Cn")
    )
    return noise / len(sample)


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def extract(data: bytes, kind: str, limits: Limits = DEFAULT_LIMITS) -> ExtractedDocument:
    """Extract normalised text and structure from a file `detect_kind` accepted as `kind`,
    stopping with an `ExtractionError` (a code of `LIMIT_CODES`) at the first cap passed."""
    if not data or not data.strip(b" \t\r\n\x00"):
        raise ExtractionError(EMPTY_FILE, "The file is empty. Upload a file with some text in it.")
    if kind in TEXT_KINDS:
        text = decode_text(data)
        _check_characters(text, limits)
        if kind == "txt":
            doc = _extract_txt(text)
        elif kind == "md":
            doc = _extract_markdown(text)
        elif kind == "html":
            doc = _extract_html(text, limits)
        else:
            doc = _extract_csv(text, limits)
    elif kind == "pdf":
        doc = _extract_pdf(data, limits)
    elif kind == "docx":
        doc = _extract_docx(data, limits)
    else:
        raise ExtractionError(UNSUPPORTED_TYPE, f"Unsupported file type. Supported: {_SUPPORTED}.")
    if not doc.text.strip():
        raise ExtractionError(EMPTY_FILE, "No text was found in this file.")
    return doc


class _SectionBuilder:
    """Collects (heading, level, text) runs into Sections with their heading paths."""

    def __init__(self, max_characters: int | None = None) -> None:
        self.max_characters = max_characters
        self._characters = 0
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []  # (level, heading) of the enclosing headings
        self._heading: str | None = None
        self._parts: list[str] = []
        self._page: int | None = None

    def heading(self, text: str, level: int) -> None:
        self.flush()
        text = normalize_text(text).replace("\n", " ")
        if not text:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._heading = text

    def text(self, text: str) -> None:
        self._characters += len(text)
        if self.max_characters is not None and self._characters > self.max_characters:
            raise _too_many_characters(self.max_characters)
        self._parts.append(text)

    def at_paragraph_start(self) -> bool:
        """True after a heading or a blank line (where a setext heading may begin)."""
        return not self._parts or self._parts[-1].strip() == ""

    def page(self, number: int) -> None:
        self.flush()
        self._page = number

    def flush(self) -> None:
        body = normalize_text("".join(self._parts))
        self._parts = []
        if body:
            path = tuple(h for _, h in self._stack) if self._heading else ()
            self.sections.append(Section(self._heading, body, self._page, path))

    def document(self, kind: str, **kwargs) -> ExtractedDocument:
        self.flush()
        return ExtractedDocument(
            kind=kind, text=_render(self.sections), sections=self.sections, **kwargs
        )


def _render(sections: list[Section]) -> str:
    blocks = []
    for section in sections:
        blocks.append(f"{section.heading}\n\n{section.text}" if section.heading else section.text)
    return normalize_text("\n\n".join(blocks))


def _extract_txt(text: str) -> ExtractedDocument:
    builder = _SectionBuilder()
    builder.text(text)
    return builder.document("txt")


_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-{2,})[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _extract_markdown(text: str) -> ExtractedDocument:
    text = normalize_newlines(text)
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        # YAML front matter is metadata for site generators, not knowledge.
        for i in range(1, min(len(lines), 60)):
            if lines[i].strip() in ("---", "..."):
                lines = lines[i + 1 :]
                break

    builder = _SectionBuilder()
    title = None
    in_fence = False
    pending: str | None = None  # a line that may turn out to be a setext heading
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            if pending is not None:
                builder.text(pending + "\n")
                pending = None
            builder.text(line + "\n")
            continue
        if not in_fence:
            atx = _ATX_HEADING.match(line)
            underline = _SETEXT_UNDERLINE.match(line)
            if atx:
                if pending is not None:
                    builder.text(pending + "\n")
                    pending = None
                level = len(atx.group(1))
                builder.heading(atx.group(2), level)
                if level == 1 and title is None:
                    title = normalize_text(atx.group(2))
                continue
            if underline and pending is not None and pending.strip():
                level = 1 if underline.group(1).startswith("=") else 2
                builder.heading(pending, level)
                if level == 1 and title is None:
                    title = normalize_text(pending)
                pending = None
                continue
        if pending is not None:
            builder.text(pending + "\n")
        # A setext heading is a single-line paragraph, so only a line after a blank one
        # (or a heading) may become one.
        if not in_fence and line.strip() and builder.at_paragraph_start():
            pending = line
        else:
            pending = None
            builder.text(line + "\n")
    if pending is not None:
        builder.text(pending + "\n")
    return builder.document("md", title=title)


class _HTMLTextParser(HTMLParser):
    """Walks HTML keeping readable text, headings as section boundaries, tables as rows."""

    _SKIP = {"script", "style", "noscript", "template", "svg", "iframe", "object", "nav", "head"}
    _HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
    _BLOCKS = {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "blockquote",
        "ul",
        "ol",
        "dl",
        "table",
        "form",
        "figure",
        "figcaption",
        "address",
        "hr",
        "details",
        "summary",
    }
    _LINES = {"tr", "dt", "dd", "caption"}

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(convert_charrefs=True)
        self.max_tags = limits.max_xml_elements
        self._tags = 0
        self.builder = _SectionBuilder()
        self.title: str | None = None
        self._skip_depth = 0
        self._in_title = False
        self._title_parts: list[str] = []
        self._heading_level: int | None = None
        self._heading_parts: list[str] = []
        self._pre_depth = 0
        self._cell_index = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        self._tags += 1
        if self._tags > self.max_tags:
            raise ExtractionError(
                TOO_MANY_XML_ELEMENTS,
                f"This page has more than {self.max_tags:,} HTML elements, more than Wafaa "
                "reads from one file. Save the text alone as .txt, or split the page.",
            )
        if tag == "body":
            # A page that never closes <head> must not lose its whole body.
            self._skip_depth = 0
            return
        if tag == "title":
            self._in_title = True
            return
        if tag in self._SKIP:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag in self._HEADINGS:
            self._heading_level = self._HEADINGS[tag]
            self._heading_parts = []
        elif tag in self._BLOCKS:
            self.builder.text("\n\n")
        elif tag in self._LINES:
            self.builder.text("\n")
            self._cell_index = 0
        elif tag == "li":
            self.builder.text("\n- ")
        elif tag == "br":
            self._emit("\n")
        elif tag in ("td", "th"):
            if self._cell_index:
                self.builder.text(" | ")
            self._cell_index += 1
        elif tag == "pre":
            self._pre_depth += 1
            self.builder.text("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = normalize_text("".join(self._title_parts)) or None
            return
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in self._HEADINGS and self._heading_level is not None:
            self.builder.heading("".join(self._heading_parts), self._heading_level)
            self._heading_level = None
        elif tag in self._BLOCKS or tag == "pre":
            self.builder.text("\n\n")
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
            return
        if self._skip_depth:
            return
        if not self._pre_depth:
            # Source line breaks in HTML are just spaces; structure comes from the tags.
            data = re.sub(r"\s+", " ", data)
        self._emit(data)

    def _emit(self, data: str) -> None:
        if self._heading_level is not None:
            self._heading_parts.append(data)
        else:
            self.builder.text(data)


def _extract_html(text: str, limits: Limits = DEFAULT_LIMITS) -> ExtractedDocument:
    parser = _HTMLTextParser(limits)
    parser.feed(text)
    parser.close()
    return parser.builder.document("html", title=parser.title)


def _delimiter(header_line: str) -> str:
    # Spreadsheets in many locales (French, Arabic) export with ';', so pick the separator
    # the header line actually uses rather than assuming ','.
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _lines(text: str):
    """The lines of `text` with their ends, one at a time: no copy of the whole text (an
    io.StringIO would hold it again at 4 bytes per character)."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        end = size if end < 0 else end + 1
        yield text[start:end]
        start = end


def _csv_rows(text: str):
    """The CSV's non-blank rows, one at a time (nothing is kept)."""
    text = normalize_newlines(text).lstrip("\ufeff")
    first_line = text[: text.find("\n")] if "\n" in text else text
    try:
        for row in csv.reader(_lines(text), delimiter=_delimiter(first_line)):
            if any(cell.strip() for cell in row):
                yield row
    except csv.Error as exc:
        raise ExtractionError(
            INVALID_CSV, f"This CSV could not be read ({exc}). Check its quotes and separators."
        ) from None


# A header "question_en", "Question (AR)", "answer-fr", "السؤال_ar": one language's column of
# a bilingual FAQ (one row per entry, a question and an answer column per language).
_LANGUAGE_HEADER = re.compile(r"^(?P<base>.+?)[\s_:\-(\[]+(?P<language>[a-z]{2})[)\]]?$")


def _header_columns(headers: list[str]) -> list[tuple[str | None, int, int]]:
    """(language or None, question column, answer column) for each complete pair of columns."""
    found: dict[str | None, dict[str, int]] = {}
    for index, header in enumerate(headers):
        match = _LANGUAGE_HEADER.match(header)
        base, language = (
            (match.group("base").strip(), match.group("language")) if match else (header, None)
        )
        if base not in _QUESTION_HEADERS and base not in _ANSWER_HEADERS:
            base, language = header, None
        role = "q" if base in _QUESTION_HEADERS else "a" if base in _ANSWER_HEADERS else None
        if role:
            found.setdefault(language, {}).setdefault(role, index)
    return [(lang, cols["q"], cols["a"]) for lang, cols in found.items() if len(cols) == 2]


def _too_many_rows(limit: int) -> ExtractionError:
    return ExtractionError(
        TOO_MANY_ROWS,
        f"This CSV has more than {limit:,} rows; this plan indexes at most {limit:,} "
        "questions per document (one chunk each). Split it into smaller files, or ask Wafaa "
        "support for a larger plan.",
    )


def _csv_columns(text: str, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str | None, int, int]]:
    """The question/answer column pairs of the header; counts the rows up to the cap."""
    rows = _csv_rows(text)
    header = next(rows, None)
    if header is None:
        raise ExtractionError(EMPTY_FILE, "The CSV file is empty.")
    headers = [unicodedata.normalize("NFC", h).strip().lower() for h in header]
    columns = _header_columns(headers)
    if not columns:
        found = ", ".join(h for h in headers if h) or "none"
        raise ExtractionError(
            CSV_MISSING_COLUMNS,
            "A CSV must have a 'question' column and an 'answer' column in its first row "
            "(or one pair per language: question_en, answer_en, question_ar, answer_ar) "
            f"(found: {found}). Rename the header cells and upload again.",
        )
    for count, _ in enumerate(rows, start=1):
        if count > limits.max_rows:
            raise _too_many_rows(limits.max_rows)
    return columns


def _parse_csv(
    text: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[list[tuple[str, str, str | None]]], list[str]]:
    """The FAQ entries of a CSV: per row, its (question, answer, language) versions."""
    columns = _csv_columns(text, limits)  # refuses too many rows before keeping any
    entries: list[list[tuple[str, str, str | None]]] = []
    skipped = 0
    rows = _csv_rows(text)
    next(rows)  # the header
    for row in rows:
        versions = []
        for language, q_col, a_col in columns:
            question = normalize_text(row[q_col]) if q_col < len(row) else ""
            answer = normalize_text(row[a_col]) if a_col < len(row) else ""
            if question and answer:
                versions.append((question, answer, language))
        if versions:
            entries.append(versions)
        else:
            skipped += 1
    if not entries:
        raise ExtractionError(
            CSV_NO_ROWS,
            "The CSV has question and answer columns but no row with both filled in. "
            "Add one question and its answer per row.",
        )
    warnings = []
    if skipped:
        warnings.append(f"{skipped} row(s) without both a question and an answer were skipped.")
    return entries, warnings


def _extract_csv(text: str, limits: Limits = DEFAULT_LIMITS) -> ExtractedDocument:
    entries, warnings = _parse_csv(text, limits)
    pairs: list[tuple[str, str]] = []
    meta: list[dict] = []
    for number, versions in enumerate(entries, start=1):
        answers = {language: answer for _, answer, language in versions if language}
        for question, answer, language in versions:
            pairs.append((question, answer))
            meta.append(
                {"entry": number, "language": language, "answers": answers}
                if language
                else {"entry": number}
            )
    rendered = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in pairs)
    return ExtractedDocument(
        kind="csv", text=rendered, faq_pairs=pairs, faq_meta=meta, warnings=warnings
    )


_PDF_NO_TEXT_MESSAGE = (
    "This PDF has no text layer (it looks scanned). Upload a PDF with selectable text, "
    "or paste the text into a .txt file."
)
_PDF_ENCRYPTED_MESSAGE = (
    "This PDF is password-protected. Remove the password (print or export it to a new PDF) "
    "and upload again."
)
# pypdf keeps broken lines of a hyphenated word apart ("deliv-\nery"); join them.
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def _open_pdf(data: bytes):
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password just to set permissions;
            # those open fine.
            try:
                result = reader.decrypt("")
            except Exception:
                result = pypdf.PasswordType.NOT_DECRYPTED
            if result == pypdf.PasswordType.NOT_DECRYPTED:
                raise ExtractionError(PDF_ENCRYPTED, _PDF_ENCRYPTED_MESSAGE)
    except ExtractionError:
        raise
    except Exception:
        raise _pdf_damaged() from None
    return reader


def _pdf_damaged() -> ExtractionError:
    # pypdf raises many exception types for damaged files; to the uploader they are one.
    return ExtractionError(
        INVALID_PDF, "This PDF is damaged and could not be opened. Export it again as PDF."
    )


def _too_many_pages(limit: int) -> ExtractionError:
    return ExtractionError(
        TOO_MANY_PAGES,
        f"This PDF has more than {limit:,} pages, more than Wafaa reads from one file. "
        "Split it into smaller PDFs.",
    )


def _pdf_page_count(reader, limits: Limits) -> int:
    # The page tree's own /Count first: a PDF declaring 50,000 pages is refused without
    # walking its tree. Then the pages really found, since /Count can lie.
    try:
        declared = int(reader.trailer["/Root"]["/Pages"].get("/Count", 0))
    except Exception:
        declared = 0
    if declared > limits.max_pdf_pages:
        raise _too_many_pages(limits.max_pdf_pages)
    try:
        count = len(reader.pages)
    except Exception:
        raise _pdf_damaged() from None
    if count > limits.max_pdf_pages:
        raise _too_many_pages(limits.max_pdf_pages)
    return count


def _extract_pdf(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ExtractedDocument:
    reader = _open_pdf(data)
    page_count = _pdf_page_count(reader, limits)
    builder = _SectionBuilder(limits.max_characters)
    empty_pages = []
    for number in range(1, page_count + 1):
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except Exception:
            raw = ""
        text = normalize_text(_HYPHEN_BREAK.sub(r"\1\2", normalize_newlines(raw)))
        if not any(ch.isalnum() for ch in text):
            empty_pages.append(number)
            continue
        builder.page(number)
        builder.text(text)
    if len(empty_pages) == page_count:
        raise ExtractionError(PDF_NO_TEXT, _PDF_NO_TEXT_MESSAGE)
    warnings = []
    if empty_pages:
        listed = ", ".join(str(n) for n in empty_pages[:20])
        more = "…" if len(empty_pages) > 20 else ""
        warnings.append(
            f"Page(s) {listed}{more} have no selectable text (scanned?) and were skipped."
        )
    try:
        title = ((reader.metadata.title or "").strip() or None) if reader.metadata else None
    except Exception:
        title = None
    return builder.document("pdf", title=title, page_count=page_count, warnings=warnings)


# --------------------------------------------------------------------------------------------
# DOCX, streamed: the parts are inflated through a byte counter into lxml's iterparse, and
# each top-level paragraph or table is turned into text and dropped before the next is read.
# python-docx builds the whole XML tree first (2.3 GB for a 1 MB bomb), so it is not used.
# --------------------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


class _LimitedReader:
    """A file-like view of a zip member that fails once more than `budget[0]` bytes were
    inflated (all parts of one document share the budget). Whatever the entry's header
    declares, no more than the budget is ever produced."""

    def __init__(self, raw, budget: list[int], limits: Limits):
        self.raw = raw
        self.budget = budget
        self.limits = limits

    def read(self, size: int = -1) -> bytes:
        # Never an unbounded read: lxml asks again until it gets b"".
        data = self.raw.read(size if 0 < size <= 1 << 16 else 1 << 16)
        self.budget[0] -= len(data)
        if self.budget[0] < 0:
            raise _too_large_uncompressed(self.limits)
        return data


class _XmlCounter:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.elements = 0


def _xml_events(archive, name: str, budget: list[int], counter: _XmlCounter, limits: Limits):
    """(event, element) pairs of one part, refusing DTDs and counting elements."""
    from lxml import etree

    with archive.open(name) as raw:
        events = etree.iterparse(
            _LimitedReader(raw, budget, limits),
            events=("start", "end"),
            resolve_entities=False,  # no entity expansion (billion laughs), no external files
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        first = True
        for event, element in events:
            if event == "start":
                if first:
                    first = False
                    # Office parts never carry a DTD; one here is an attack on the parser.
                    if element.getroottree().docinfo.doctype:
                        raise ExtractionError(
                            XML_FORBIDDEN,
                            "This Word document contains XML declarations Word never writes "
                            "(a DTD); it was refused. Save it again from Word.",
                        )
                counter.elements += 1
                if counter.elements > limits.max_xml_elements:
                    raise ExtractionError(
                        TOO_MANY_XML_ELEMENTS,
                        f"This Word document has more than {limits.max_xml_elements:,} XML "
                        "elements (paragraphs, runs, formatting), more than Wafaa reads from "
                        "one file. Split it into smaller documents.",
                    )
            yield event, element


def _drop(element) -> None:
    """Free an element already used, and the siblings before it."""
    parent = element.getparent()
    element.clear()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _docx_style_names(archive, names, budget, counter, limits) -> dict[str, str]:
    styles: dict[str, str] = {}
    if "word/styles.xml" not in names:
        return styles
    for event, element in _xml_events(archive, "word/styles.xml", budget, counter, limits):
        if event == "end" and element.tag == _W + "style":
            name = element.find(_W + "name")
            style_id = element.get(_W + "styleId")
            if style_id and name is not None and name.get(_W + "val"):
                styles[style_id] = name.get(_W + "val")
            _drop(element)
    return styles


def _docx_core_title(archive, names, budget, counter, limits) -> str:
    if "docProps/core.xml" not in names:
        return ""
    for event, element in _xml_events(archive, "docProps/core.xml", budget, counter, limits):
        if event == "end" and element.tag == _DC_TITLE:
            return (element.text or "").strip()
    return ""


def _docx_paragraph_text(paragraph) -> str:
    # What Word shows of a paragraph: its runs (also inside hyperlinks), tabs and breaks.
    parts: list[str] = []
    for child in paragraph:
        if child.tag == _W + "r":
            runs = (child,)
        elif child.tag == _W + "hyperlink":
            runs = child.iterfind(_W + "r")
        else:
            continue
        for run in runs:
            for node in run:
                tag = node.tag
                if tag == _W + "t":
                    parts.append(node.text or "")
                elif tag in (_W + "tab", _W + "ptab"):
                    parts.append("\t")
                elif tag in (_W + "br", _W + "cr"):
                    parts.append("\n")
                elif tag == _W + "noBreakHyphen":
                    parts.append("-")
    return "".join(parts)


def _docx_paragraph_style(paragraph, styles: dict[str, str]) -> tuple[str, bool]:
    """(style name, is a numbered/bulleted item)."""
    properties = paragraph.find(_W + "pPr")
    if properties is None:
        return "", False
    style = properties.find(_W + "pStyle")
    style_id = style.get(_W + "val", "") if style is not None else ""
    return styles.get(style_id, style_id), properties.find(_W + "numPr") is not None


def _docx_table_text(table) -> str:
    lines = []
    for row in table.iterfind(_W + "tr"):
        cells = []
        for cell in row.iterfind(_W + "tc"):
            text = "\n".join(_docx_paragraph_text(p) for p in cell.iterfind(_W + "p"))
            cells.append(" ".join(text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _extract_docx(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ExtractedDocument:
    from lxml import etree

    archive = check_zip_directory(data, limits)
    names = set(archive.namelist())
    if "word/document.xml" not in names:
        raise ExtractionError(INVALID_DOCX, _DOCX_DAMAGED_MESSAGE)
    budget = [limits.max_uncompressed_bytes]
    counter = _XmlCounter(limits)
    builder = _SectionBuilder(limits.max_characters)
    title = None
    try:
        styles = _docx_style_names(archive, names, budget, counter, limits)
        core_title = _docx_core_title(archive, names, budget, counter, limits)
        events = _xml_events(archive, "word/document.xml", budget, counter, limits)
        for event, element in events:
            if event != "end":
                continue
            parent = element.getparent()
            if parent is None or parent.tag != _W + "body":
                continue
            if element.tag == _W + "tbl":
                builder.text("\n\n" + _docx_table_text(element) + "\n\n")
            elif element.tag == _W + "p":
                title = _docx_paragraph(element, styles, builder, title)
            _drop(element)
    except ExtractionError:
        raise
    except (etree.LxmlError, zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError):
        # zipfile also lands here when an entry inflates past its declared size (bad CRC).
        raise ExtractionError(INVALID_DOCX, _DOCX_DAMAGED_MESSAGE) from None
    return builder.document("docx", title=core_title or title)


def _docx_paragraph(paragraph, styles, builder: _SectionBuilder, title: str | None):
    text = _docx_paragraph_text(paragraph)
    if not text.strip():
        builder.text("\n\n")
        return title
    style, numbered = _docx_paragraph_style(paragraph, styles)
    level = _docx_heading_level(style)
    if level is not None:
        builder.heading(text, level)
        if title is None and level <= 1:
            title = normalize_text(text)
        return title
    prefix = "- " if numbered or "list" in style.lower() else ""
    builder.text(f"{prefix}{text}\n\n")
    return title


def _docx_heading_level(style: str) -> int | None:
    name = style.strip().lower()
    if name == "title":
        return 0
    match = re.fullmatch(r"heading\s*(\d)", name)
    if match:
        return int(match.group(1))
    return None
