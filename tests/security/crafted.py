"""Hostile files, generated (small on disk, huge when inflated or parsed). Used by the upload
attack tests and by bench/bombs.py; nothing here touches Django."""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCUMENT_OPEN = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{W_NS}">'
    "<w:body>"
).encode()
DOCUMENT_CLOSE = b"</w:body></w:document>"
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
    b"</Types>"
)
MIB = 1024 * 1024


def _docx(document_xml_parts, *, level: int = 9, zip64: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=zip64) as part:
            for piece in document_xml_parts:
                part.write(piece)
    return buffer.getvalue()


@functools.cache
def docx_bomb(inflated_bytes: int = 1024 * MIB) -> bytes:
    """A valid-looking DOCX (~1 MB per GiB) whose word/document.xml inflates to
    `inflated_bytes` of whitespace between two paragraphs: deflate's best ratio (~1030:1)."""

    def parts():
        yield DOCUMENT_OPEN + b"<w:p><w:r><w:t>Hello</w:t></w:r></w:p>"
        block = b" " * MIB
        for _ in range(inflated_bytes // MIB):
            yield block
        yield b"<w:p><w:r><w:t>World</w:t></w:r></w:p>" + DOCUMENT_CLOSE

    return _docx(parts(), zip64=inflated_bytes > 2**31 - 2 * MIB)


def docx_empty_paragraphs(paragraphs: int = 2_900_000) -> bytes:
    """The issue's 0.3 MB DOCX of 2.9 M empty paragraphs (ratio ~100:1 and more)."""

    def parts():
        yield DOCUMENT_OPEN
        block = b"<w:p/>" * 100_000
        for _ in range(paragraphs // 100_000):
            yield block
        yield DOCUMENT_CLOSE

    return _docx(parts())


@functools.cache
def docx_tiny_paragraphs(paragraphs: int = 1_000_000, seed: int = 7) -> bytes:
    """Millions of one-digit paragraphs: random enough to compress at an ordinary ratio
    (so the directory check lets it through), far too many XML elements to read."""
    rng = random.Random(seed)

    def parts():
        yield DOCUMENT_OPEN
        for _ in range(paragraphs // 10_000):
            yield b"".join(
                b"<w:p><w:r><w:t>%d</w:t></w:r></w:p>" % rng.randrange(10) for _ in range(10_000)
            )
        yield DOCUMENT_CLOSE

    return _docx(parts(), level=6)


def docx_billion_laughs() -> bytes:
    """Entity expansion: 10 levels of 10 references, a few hundred bytes, 10^9 'lol's."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    xml = (
        '<?xml version="1.0"?>\n<!DOCTYPE w:document [' + "".join(entities) + "]>"
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    ).encode()
    return _docx([xml])


def zip_with_lying_sizes(declared: int = 10_000, inflated_bytes: int = 256 * MIB) -> bytes:
    """A DOCX whose directory declares word/document.xml `declared` bytes long while its
    data inflates to `inflated_bytes`: the ratio looks harmless, only counting tells."""
    data = bytearray(docx_bomb(inflated_bytes))
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = archive.getinfo("word/document.xml")
    # Local file header: uncompressed size at offset 22; central directory entry: at 24.
    struct.pack_into("<L", data, info.header_offset + 22, declared)
    at = 0
    while True:
        at = data.find(b"PK\x01\x02", at)
        if at < 0:
            break
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_length]) == b"word/document.xml":
            struct.pack_into("<L", data, at + 24, declared)
        at += 4
    return bytes(data)


def pdf_many_pages(pages: int = 50_000, *, declared: int | None = None) -> bytes:
    """A minimal PDF with `pages` empty pages in one flat page tree; `declared` (the tree's
    /Count) may lie about it."""
    count = pages if declared is None else declared
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count)
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"
    objects.extend(page for _ in range(pages))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def csv_rows(rows: int = 1_000_000) -> bytes:
    """A FAQ CSV of `rows` distinct questions (hex numbers), ~8 MB per million: under the
    default 10 MB upload limit, like the issue's 7 MB CSV."""
    lines = ["question,answer"]
    lines.extend(f"{i:x},y" for i in range(rows))
    return "\n".join(lines).encode()
