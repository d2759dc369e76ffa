"""Turn an uploaded file into clean text with its structure (sections, pages, FAQ pairs).

Pure Python, no Django: the upload API calls `detect_kind` to refuse a bad file at once (by its
content, not only its name), and ingestion calls `extract` to get an `ExtractedDocument` that
`knowledge.chunking` cuts into chunks. Every refusal is an `ExtractionError` with a stable code
and a message the uploader can act on.
"""

from __future__ import annotations

import csv
import io
import re
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


def detect_kind(data: bytes, filename: str, declared_content_type: str | None = None) -> str:
    """Return the kind of an upload ('txt', 'md', 'html', 'pdf', 'docx', 'csv') or refuse it.

    The file's bytes decide, the name and declared type only break ties: a PDF must start
    with %PDF, a DOCX must be a zip holding word/document.xml, text must be UTF-8 (or UTF-16
    with a BOM) without binary noise, and a CSV must have question and answer columns.
    Cheap by design (no full PDF parse); `extract` finds problems such as a scanned PDF.
    """
    if not data or not data.strip(b" \t\r\n\x00"):
        raise ExtractionError(EMPTY_FILE, "The file is empty. Upload a file with some text in it.")

    ext = filename.rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    content_type = (declared_content_type or "").split(";")[0].strip().lower()
    claimed = _EXTENSIONS.get(ext) or _CONTENT_TYPES.get(content_type)

    # PDF allows junk before the header, but text that merely mentions "%PDF-" must not
    # pass for a PDF: the header has to open the file unless the name says PDF.
    if data.lstrip()[:5] == b"%PDF-" or (claimed == "pdf" and b"%PDF-" in data[:1024]):
        # Whatever its name says, it is a PDF; accept it as one if it opens.
        _open_pdf(data)
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return _detect_zip(data, claimed)
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
    if claimed == "csv":
        _parse_csv(text)  # refuses a CSV without question/answer columns now, not later
        return "csv"
    if claimed:
        return claimed
    sniff = text[:1024].lstrip().lower()
    if sniff.startswith(("<!doctype html", "<html")) or "<body" in sniff:
        return "html"
    return "txt"


def _detect_zip(data: bytes, claimed: str | None) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        names = set()
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


def extract(data: bytes, kind: str) -> ExtractedDocument:
    """Extract normalised text and structure from a file `detect_kind` accepted as `kind`."""
    if not data or not data.strip(b" \t\r\n\x00"):
        raise ExtractionError(EMPTY_FILE, "The file is empty. Upload a file with some text in it.")
    if kind == "txt":
        doc = _extract_txt(decode_text(data))
    elif kind == "md":
        doc = _extract_markdown(decode_text(data))
    elif kind == "html":
        doc = _extract_html(decode_text(data))
    elif kind == "csv":
        doc = _extract_csv(decode_text(data))
    elif kind == "pdf":
        doc = _extract_pdf(data)
    elif kind == "docx":
        doc = _extract_docx(data)
    else:
        raise ExtractionError(UNSUPPORTED_TYPE, f"Unsupported file type. Supported: {_SUPPORTED}.")
    if not doc.text.strip():
        raise ExtractionError(EMPTY_FILE, "No text was found in this file.")
    return doc


class _SectionBuilder:
    """Collects (heading, level, text) runs into Sections with their heading paths."""

    def __init__(self) -> None:
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

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
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


def _extract_html(text: str) -> ExtractedDocument:
    parser = _HTMLTextParser()
    parser.feed(text)
    parser.close()
    return parser.builder.document("html", title=parser.title)


def _delimiter(header_line: str) -> str:
    # Spreadsheets in many locales (French, Arabic) export with ';', so pick the separator
    # the header line actually uses rather than assuming ','.
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


# A header "question_en", "Question (AR)", "answer-fr", "السؤال_ar": one language's column of
# a bilingual FAQ (one row per entry, a question and an answer column per language).
_LANGUAGE_HEADER = re.compile(r"^(?P<base>.+?)[\s_:\-(\[]+(?P<language>[a-z]{2})[)\]]?$")


def _csv_columns(headers: list[str]) -> list[tuple[str | None, int, int]]:
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


def _parse_csv(text: str) -> tuple[list[list[tuple[str, str, str | None]]], list[str]]:
    """The FAQ entries of a CSV: per row, its (question, answer, language) versions."""
    text = normalize_newlines(text).lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=_delimiter(first_line)))
    except csv.Error as exc:
        raise ExtractionError(
            INVALID_CSV, f"This CSV could not be read ({exc}). Check its quotes and separators."
        ) from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ExtractionError(EMPTY_FILE, "The CSV file is empty.")
    headers = [unicodedata.normalize("NFC", h).strip().lower() for h in rows[0]]
    columns = _csv_columns(headers)
    if not columns:
        found = ", ".join(h for h in headers if h) or "none"
        raise ExtractionError(
            CSV_MISSING_COLUMNS,
            "A CSV must have a 'question' column and an 'answer' column in its first row "
            "(or one pair per language: question_en, answer_en, question_ar, answer_ar) "
            f"(found: {found}). Rename the header cells and upload again.",
        )
    entries: list[list[tuple[str, str, str | None]]] = []
    skipped = 0
    for row in rows[1:]:
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


def _extract_csv(text: str) -> ExtractedDocument:
    entries, warnings = _parse_csv(text)
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
        page_count = len(reader.pages)
    except ExtractionError:
        raise
    except Exception:
        # pypdf raises many exception types for damaged files; to the uploader they are one.
        raise ExtractionError(
            INVALID_PDF, "This PDF is damaged and could not be opened. Export it again as PDF."
        ) from None
    return reader, page_count


def _extract_pdf(data: bytes) -> ExtractedDocument:
    reader, page_count = _open_pdf(data)
    builder = _SectionBuilder()
    empty_pages = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            raw = page.extract_text() or ""
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


def _extract_docx(data: bytes) -> ExtractedDocument:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception:
        raise ExtractionError(
            INVALID_DOCX,
            "This Word document could not be opened (it may be damaged). "
            "Save it again from Word as .docx, or upload a PDF.",
        ) from None

    builder = _SectionBuilder()
    title = None
    for block in blocks:
        if isinstance(block, Table):
            builder.text("\n\n" + _docx_table_text(block) + "\n\n")
            continue
        text = block.text
        if not text.strip():
            builder.text("\n\n")
            continue
        level = _docx_heading_level(block)
        if level is not None:
            builder.heading(text, level)
            if title is None and level <= 1:
                title = normalize_text(text)
            continue
        prefix = "- " if _docx_is_list_item(block) else ""
        builder.text(f"{prefix}{text}\n\n")
    try:
        core_title = (document.core_properties.title or "").strip()
    except Exception:
        core_title = ""
    return builder.document("docx", title=core_title or title)


def _docx_heading_level(paragraph) -> int | None:
    try:
        name = (paragraph.style.name or "").strip().lower() if paragraph.style else ""
    except Exception:
        return None
    if name == "title":
        return 0
    match = re.fullmatch(r"heading\s*(\d)", name)
    if match:
        return int(match.group(1))
    return None


def _docx_is_list_item(paragraph) -> bool:
    ppr = paragraph._p.pPr
    if ppr is not None and ppr.numPr is not None:
        return True
    try:
        return "list" in (paragraph.style.name or "").lower()
    except Exception:
        return False


def _docx_table_text(table) -> str:
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
