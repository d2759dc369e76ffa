"""Text helpers every part of Wafaa shares: normalisation for matching, words, sentences,
truncation. Pure Python, no Django.

One copy of each idea, so retrieval, the handoff keywords, the hashing embedder and the
answerer agree on what "the same word" is:

- `normalize` (for matching, never for display): NFKD, casefold, accents, Arabic
  diacritics and tatweel removed, alef forms (أ إ آ ٱ) to ا, ة to ه, ى to ي, Persian/Urdu yeh and keheh
  (ی ک) to their Arabic letters, Arabic-Indic and Persian digits to 0-9. "خدمه العملاء"
  and "خدمة العملاء" normalise alike.
- `words`, `content_words`, `STOPWORDS`: tokens after normalisation.
- `split_sentences`: after . ! ? … and the Arabic question mark / full stop (optionally at
  line breaks too).
- `truncate`: cut to a length at a sentence end or a word boundary, with an ellipsis.
- `NORMALIZE_SQL`: the same normalisation as a PostgreSQL expression, so the full-text index
  holds the words the query is matched with.
"""

from __future__ import annotations

import re
import unicodedata

# Arabic short vowels, shadda, sukun, Quranic marks, superscript alef and tatweel: optional in
# writing, so two spellings of one word differ only by them.
_MARKS = "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640"
_ARABIC_MARKS = re.compile(f"[{_MARKS}]")
_LETTER_FROM = "\u0623\u0625\u0622\u0671\u0649\u0629\u06cc\u06a9"  # أ إ آ ٱ ى ة ی ک
_LETTER_TO = "\u0627\u0627\u0627\u0627\u064a\u0647\u064a\u0643"  # ا ا ا ا ي ه ي ك
_DIGITS_FROM = "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669" + (
    "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9"
)
_DIGITS_TO = "0123456789" * 2
_TABLE = str.maketrans(_LETTER_FROM + _DIGITS_FROM, _LETTER_TO + _DIGITS_TO)
_WORDS = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Casefold and unify spelling variants (see the module docstring). For matching only."""
    text = unicodedata.normalize("NFKD", text or "").casefold()
    # Accents and hamza seats are combining marks after NFKD: "où" = "ou", "ؤ" = "و".
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", _ARABIC_MARKS.sub("", text).translate(_TABLE))


def words(text: str) -> list[str]:
    """Unicode words of `text` after `normalize`."""
    return _WORDS.findall(normalize(text))


# Very common words carry little meaning (question words, articles, pronouns) in the
# languages customers write in, Arabic dialects and Arabizi included.
_STOPWORDS_TEXT = """
    a an the and or but if of to in on at by for with from as is are was were be been it
    this that these those i you he she we they me my your our their do does did can could
    will would should what which who whom how when where why there here not no yes so than
    any have has get please hi hello thanks thank ok okay us
    le la les un une des du de et ou est sont en au aux pour par avec dans sur ce cette je
    vous nous il elle on qui que quoi comment quand où pas ne ça svp bonjour merci
    el los las y o es son para por con que como cuando donde hay tienen tiene hola gracias
    mi su un una al lo se
    في من على إلى الى عن مع هل ما ماذا هذا هذه ذلك التي الذي كيف متى أين اين و او أو ان أن لا
    نعم هو هي انا أنا انت أنت نحن هم كان عندكم عندك لو سمحت من فضلك شو ايش وش ليش فين وين
    شنو واش ديال دايل بتاع اللي يا كم
    ana enta enti wach wash fi fih 3andkom 3ndkom 3andek chno chnou shu eh ech law sama7t
    """
STOPWORDS = frozenset(normalize(w) for w in _STOPWORDS_TEXT.split())


def content_words(text: str) -> list[str]:
    """`words` without stopwords and one-letter words; all words when nothing is left."""
    tokens = [w for w in words(text) if len(w) > 1]
    kept = [w for w in tokens if w not in STOPWORDS]
    return kept or tokens


# --------------------------------------------------------------------------------------------
# Sentences and truncation
# --------------------------------------------------------------------------------------------

# Sentence ends: . ! ? … plus the Arabic question mark and full stop (U+061F, U+06D4),
# optionally followed by closing quotes or brackets (kept with their sentence), then space.
_SENTENCE_END = re.compile(r"([.!?\u061f\u06d4\u2026][\"'\u201d\u2019)\]]*)\s+")
_SENTENCE_OR_LINE_END = re.compile(r"([.!?\u061f\u06d4\u2026][\"'\u201d\u2019)\]]*)\s+|\n+")
_FULL_STOP = re.compile(r"[.!?\u061f\u06d4\u2026][\"'\u201d\u2019)\]]*(?=\s|$)")


def split_sentences(text: str, *, lines: bool = False) -> list[str]:
    """Split after sentence-ending punctuation followed by whitespace (and, with `lines`, at
    every line break); stripped, empty pieces dropped."""
    pattern = _SENTENCE_OR_LINE_END if lines else _SENTENCE_END
    sentences, start = [], 0
    for match in pattern.finditer(text or ""):
        end = match.end(1) if match.group(1) else match.start()
        sentences.append(text[start:end])
        start = match.end()
    sentences.append((text or "")[start:])
    return [s.strip() for s in sentences if s.strip()]


def truncate(text: str, limit: int, *, ellipsis: str = "…", prefer_sentence: bool = False) -> str:
    """`text` cut to at most `limit` characters (ellipsis included).

    The cut falls on the last sentence end (with `prefer_sentence`, no ellipsis then) or the
    last whitespace, when that keeps at least half of the room; else mid-word.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[: max(limit, 0)]
    room = limit - len(ellipsis)
    cut = text[:room]
    if prefer_sentence:
        ends = [m.end() for m in _FULL_STOP.finditer(text[:limit])]
        if ends and ends[-1] >= limit // 2:
            return text[: ends[-1]].strip()
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= room // 2:
        cut = cut[:space]
    return cut.rstrip() + ellipsis


# --------------------------------------------------------------------------------------------
# The same normalisation in SQL (full-text index)
# --------------------------------------------------------------------------------------------


def normalize_sql(expression: str) -> str:
    """A PostgreSQL expression normalising `expression` like `normalize` does (lower() in
    place of casefold; NFKC is left to the stored text, which extraction normalises)."""
    return (
        f"translate(lower(regexp_replace({expression}, '[{_MARKS}]', '', 'g')), "
        f"'{_LETTER_FROM}{_DIGITS_FROM}', '{_LETTER_TO}{_DIGITS_TO}')"
    )
