"""Cut an ExtractedDocument into chunks sized for embedding and for a prompt.

Structure first: sections (heading kept as context), then paragraphs, packed up to a target
size; a paragraph too big for a chunk is split on sentence boundaries (Latin and Arabic
punctuation), then on lines, then on words. Consecutive chunks of one section overlap a
little so an answer that straddles a boundary is still found whole. Question/answer pairs
(CSV rows, "Q:/A:" lines, a bold or heading question followed by its answer) are each one
chunk, never split and never merged with their neighbours, because a FAQ answer cut in two
or glued to another question retrieves badly.

Token counts are an estimate, not a tokenizer: each word counts ceil(len/4) tokens (at
least 1) and each punctuation mark 1. That tracks BPE tokenizers closely for English and
errs high for Arabic and French, which is the safe side for the embedding model's input
limit and the prompt budget, and needs no tokenizer download.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from knowledge.extraction import TOO_MANY_CHUNKS, ExtractedDocument, ExtractionError, Section
from wafaa.text import split_sentences

_WORD_PIECES = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Cheap, additive token estimate (see the module docstring)."""
    return sum(
        max(1, math.ceil(len(piece) / 4)) if piece[0].isalnum() or piece[0] == "_" else 1
        for piece in _WORD_PIECES.findall(text)
    )


@dataclass
class ChunkDraft:
    ordinal: int
    text: str
    token_count: int
    metadata: dict = field(default_factory=dict)


# "Q: ..." / "A: ..." lines, in English, French and Arabic (س/ج are the Arabic Q/A).
# Only a colon separates the marker, so "a) first option" in a list is not an answer line.
_Q_LINE = re.compile(
    r"^\s*(?:\*\*|__)?(?:q|question|س|سؤال|السؤال)\s*(?:\d+\s*)?[:\uff1a]"
    r"\s*(?:\*\*|__)?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_A_LINE = re.compile(
    r"^\s*(?:\*\*|__)?(?:a|answer|r|réponse|reponse|ج|جواب|الجواب|الإجابة|الاجابة)\s*[:\uff1a]"
    r"\s*(?:\*\*|__)?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_BOLD_QUESTION = re.compile(r"^\s*(?:\*\*|__)(?P<q>[^\n]+?[?؟])\s*(?:\*\*|__)\s*$")
_PLAIN_QUESTION = re.compile(r"^[^\n]{3,200}[?؟]$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def chunk_document(
    doc: ExtractedDocument,
    *,
    target_tokens: int = 400,
    max_tokens: int = 500,
    overlap_tokens: int = 50,
    max_chunks: int | None = None,
) -> list[ChunkDraft]:
    """Chunk a document; FAQ pairs are one chunk each, everything else is packed by section.

    With `max_chunks`, a document that would make more chunks is refused
    (`ExtractionError` `too_many_chunks`) as soon as the count passes it, so a huge document
    never holds more than `max_chunks` drafts in memory.

    Text chunks hold at most `max_tokens` (estimated), heading trail included; FAQ chunks are
    never split, so a single very long answer may exceed it. Metadata: `kind` ('text' or
    'faq'), `question` (FAQ), and for chunks from a section `section` (its index),
    `heading`, `heading_path` (when there are headings) and `page` (PDF).
    """
    if not 0 < target_tokens <= max_tokens:
        raise ValueError("need 0 < target_tokens <= max_tokens")
    if not 0 <= overlap_tokens < target_tokens:
        raise ValueError("need 0 <= overlap_tokens < target_tokens")

    chunks: list[ChunkDraft] = []
    seen: set[str] = set()

    def emit(text: str, metadata: dict) -> None:
        # The same text twice (a repeated PDF footer, a duplicated CSV row) only adds noise.
        if text in seen:
            return
        seen.add(text)
        if max_chunks is not None and len(chunks) >= max_chunks:
            raise ExtractionError(
                TOO_MANY_CHUNKS,
                f"This document makes more than {max_chunks:,} chunks, the most this plan "
                "indexes per document. Split it into smaller documents.",
            )
        chunks.append(ChunkDraft(len(chunks), text, estimate_tokens(text), metadata))

    for index, section in enumerate(doc.sections):
        base = _section_metadata(section, index)
        packer = _Packer(section, base, target_tokens, max_tokens, overlap_tokens, emit)
        for unit in _units(section, max_tokens):
            if isinstance(unit, tuple):
                packer.flush(reset_overlap=True)
                question, answer = unit
                emit(_faq_text(question, answer), {**base, "kind": "faq", "question": question})
            else:
                packer.add(unit)
        packer.flush(reset_overlap=True)

    for index, (question, answer) in enumerate(doc.faq_pairs):
        meta = doc.faq_meta[index] if index < len(doc.faq_meta) else {}
        emit(_faq_text(question, answer), {"kind": "faq", "question": question, **meta})
    return chunks


def _faq_text(question: str, answer: str) -> str:
    return f"Q: {question}\nA: {answer}"


def _section_metadata(section: Section, index: int) -> dict:
    metadata: dict = {"section": index, "heading": section.heading}
    if section.heading_path:
        metadata["heading_path"] = list(section.heading_path)
    if section.page is not None:
        metadata["page"] = section.page
    return metadata


def _heading_prefix(section: Section, max_tokens: int) -> str:
    """The context line put in front of every text chunk of a section: its heading trail."""
    trail = list(section.heading_path) or ([section.heading] if section.heading else [])
    prefix = " \u203a ".join(trail)  # "Shipping > Domestic", with an angle quote
    # A runaway heading (a whole paragraph styled as Heading) must not eat the chunk budget.
    limit = max(1, max_tokens // 8)
    if estimate_tokens(prefix) > limit:
        prefix = _take_words(prefix, limit) + "…"
    return prefix


# --------------------------------------------------------------------------------------------
# Units: paragraphs and question/answer pairs, in document order
# --------------------------------------------------------------------------------------------


def _units(section: Section, max_tokens: int) -> list[str | tuple[str, str]]:
    """Split a section into paragraphs (str) and FAQ pairs ((question, answer))."""
    units: list[str | tuple[str, str]] = []
    blocks = [b.strip() for b in re.split(r"\n\s*\n", section.text) if b.strip()]
    i = 0
    while i < len(blocks):
        block = blocks[i]
        lines = block.split("\n")
        q_match = _Q_LINE.match(lines[0])
        if q_match:
            pair, i = _take_qa_pair(blocks, i)
            if pair:
                units.append(pair)
                continue
        bold = _BOLD_QUESTION.match(block)
        plain = _PLAIN_QUESTION.match(block) if not bold else None
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        # A guessed pair (no Q:/A: markers) must fit in one chunk; a question-like line
        # before a long text is a section of prose, not a FAQ entry.
        if (
            (bold or plain)
            and nxt
            and not _looks_like_question(nxt)
            and estimate_tokens(nxt) <= max_tokens
        ):
            # "Q: Is it free?" followed by an answer without its "A:" marker.
            match = bold or q_match
            question = match.group("q" if bold else "rest") if match else block
            units.append((_strip_emphasis(question), nxt))
            i += 2
            continue
        units.append(block)
        i += 1

    heading = (section.heading or "").strip()
    # A section titled with a question and holding only a short answer is itself a FAQ
    # entry (the usual shape of FAQ web pages and Word documents).
    if (
        heading.endswith(("?", "؟"))
        and all(isinstance(unit, str) for unit in units)
        and estimate_tokens(section.text) <= max_tokens
    ):
        return [(heading, section.text.strip())]
    return units


def _looks_like_question(block: str) -> bool:
    return bool(_Q_LINE.match(block) or _BOLD_QUESTION.match(block) or _PLAIN_QUESTION.match(block))


def _take_qa_pair(blocks: list[str], i: int) -> tuple[tuple[str, str] | None, int]:
    """Read a "Q: ... / A: ..." pair starting at blocks[i]; return it and the next index.

    The question runs until the "A:" line (which may open the next block); the answer runs
    until the next "Q:" line or the end of its block, taking along list items that follow
    after a blank line, so prose after the last pair stays ordinary text. Returns (None, i)
    and leaves `blocks` untouched when there is no answer.
    """
    lines = blocks[i].split("\n")
    question_lines = [_Q_LINE.match(lines[0]).group("rest")]
    answer_lines: list[str] | None = None
    rest: list[str] = []  # lines of the next pair when it starts inside the same block
    for j, line in enumerate(lines[1:], start=1):
        if answer_lines is None:
            a_match = _A_LINE.match(line)
            if a_match:
                answer_lines = [a_match.group("rest")]
            else:
                question_lines.append(line)
        elif _Q_LINE.match(line):
            rest = lines[j:]
            break
        else:
            answer_lines.append(line)
    nxt = i + 1
    if answer_lines is None and nxt < len(blocks) and _A_LINE.match(blocks[nxt].split("\n")[0]):
        a_lines = blocks[nxt].split("\n")
        answer_lines = [_A_LINE.match(a_lines[0]).group("rest")]
        for k, line in enumerate(a_lines[1:], start=1):
            if _Q_LINE.match(line):
                rest = a_lines[k:]
                break
            answer_lines.append(line)
        nxt += 1
    if answer_lines is None:
        return None, i
    if not rest:
        while (
            nxt < len(blocks) and _LIST_ITEM.match(blocks[nxt]) and not _Q_LINE.match(blocks[nxt])
        ):
            answer_lines.append(blocks[nxt])
            nxt += 1
    question = _strip_emphasis(" ".join(q.strip() for q in question_lines if q.strip()))
    answer = _strip_emphasis("\n".join(a.rstrip() for a in answer_lines))
    if not question or not answer:
        return None, i
    if rest:
        blocks.insert(nxt, "\n".join(rest))
    return (question, answer), nxt


def _strip_emphasis(text: str) -> str:
    return re.sub(r"(\*\*|__)", "", text).strip()


# --------------------------------------------------------------------------------------------
# Packing paragraphs into chunks
# --------------------------------------------------------------------------------------------


class _Packer:
    """Greedily packs a section's paragraphs into chunks, with overlap between them."""

    def __init__(self, section, base, target_tokens, max_tokens, overlap_tokens, emit):
        self.prefix = _heading_prefix(section, max_tokens)
        prefix_tokens = estimate_tokens(self.prefix)
        self.body_target = max(1, target_tokens - prefix_tokens)
        self.body_max = max(1, max_tokens - prefix_tokens)
        self.overlap_tokens = overlap_tokens
        self.base = base
        self.emit = emit
        self.parts: list[str] = []
        self.tokens = 0
        self.fresh = 0  # parts added since the last flush that are not overlap
        self.previous: str | None = None  # body of the last chunk, for the next overlap

    def add(self, paragraph: str) -> None:
        for piece in _split_to_fit(paragraph, self.body_target):
            piece_tokens = estimate_tokens(piece)
            if self.fresh and self.tokens + piece_tokens > self.body_target:
                self.flush()
            if not self.fresh and self.previous and self.overlap_tokens:
                room = min(self.overlap_tokens, self.body_max - piece_tokens)
                tail = _tail(self.previous, room) if room > 0 else ""
                self.parts, self.tokens = ([tail], estimate_tokens(tail)) if tail else ([], 0)
            self.parts.append(piece)
            self.tokens += piece_tokens
            self.fresh += 1

    def flush(self, *, reset_overlap: bool = False) -> None:
        if self.fresh:
            body = "\n\n".join(self.parts)
            text = f"{self.prefix}\n\n{body}" if self.prefix else body
            self.emit(text, {**self.base, "kind": "text"})
            self.previous = body
        self.parts, self.tokens, self.fresh = [], 0, 0
        if reset_overlap:
            # Overlap only joins neighbouring text chunks; never carry text across a FAQ pair.
            self.previous = None


def _split_to_fit(text: str, limit: int) -> list[str]:
    """Split text into pieces of at most `limit` tokens: sentences, then lines, then words."""
    if estimate_tokens(text) <= limit:
        return [text]
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if estimate_tokens(sentence) <= limit:
            pieces.append(sentence)
            continue
        for line in sentence.split("\n"):
            if estimate_tokens(line) <= limit:
                pieces.append(line)
            else:
                pieces.extend(_split_words(line, limit))
    # Re-pack the sentences so a long paragraph gives few, full pieces instead of many tiny ones.
    packed: list[str] = []
    current: list[str] = []
    tokens = 0
    for piece in pieces:
        piece_tokens = estimate_tokens(piece)
        if current and tokens + piece_tokens > limit:
            packed.append(" ".join(current))
            current, tokens = [], 0
        current.append(piece)
        tokens += piece_tokens
    if current:
        packed.append(" ".join(current))
    return [p for p in packed if p.strip()]


def _split_words(text: str, limit: int) -> list[str]:
    pieces, current, tokens = [], [], 0
    for word in text.split():
        word_tokens = estimate_tokens(word)
        if current and tokens + word_tokens > limit:
            pieces.append(" ".join(current))
            current, tokens = [], 0
        if word_tokens > limit:
            # A single enormous "word" (a URL, base64): cut it by characters; a character is
            # never more than one estimated token, so `limit` characters always fit.
            step = max(1, limit)
            pieces.extend(word[k : k + step] for k in range(0, len(word), step))
            continue
        current.append(word)
        tokens += word_tokens
    if current:
        pieces.append(" ".join(current))
    return pieces


def _tail(text: str, budget: int) -> str:
    """The end of `text` worth at most `budget` tokens, starting at a sentence if possible."""
    sentences = split_sentences(text.replace("\n\n", "\n"))
    taken: list[str] = []
    tokens = 0
    for sentence in reversed(sentences):
        sentence_tokens = estimate_tokens(sentence)
        if tokens + sentence_tokens > budget:
            break
        taken.insert(0, sentence)
        tokens += sentence_tokens
    if taken:
        return " ".join(taken)
    # The last sentence alone is longer than the overlap: take its last words.
    words = text.split()
    tail: list[str] = []
    tokens = 0
    for word in reversed(words):
        word_tokens = estimate_tokens(word)
        if tokens + word_tokens > budget:
            break
        tail.insert(0, word)
        tokens += word_tokens
    return " ".join(tail)


def _take_words(text: str, budget: int) -> str:
    words, tokens = [], 0
    for word in text.split():
        word_tokens = estimate_tokens(word)
        if tokens + word_tokens > budget:
            break
        words.append(word)
        tokens += word_tokens
    return " ".join(words)
