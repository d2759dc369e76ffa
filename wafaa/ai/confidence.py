"""Calibrated confidence: which knowledge entry answers a question, and how sure we are.

Retrieval returns candidates (chunks with a cosine similarity and a keyword score). This
module, pure Python, turns them into one decision:

1. Candidates are grouped by *entry* (a FAQ row in all its languages is one entry), so the
   margin is measured against the next entry, not the same answer in another language.
2. Each entry gets a score from the evidence that separates right from wrong answers:
   - `similarity`: the cosine similarity of the question to the entry (vector leg);
   - `overlap`: the share of the question's content words found in the entry (question and
     answer, every language version), after normalisation (wafaa.text), with typo tolerance
     (character trigrams), Arabic clitics stripped, Arabizi ("kam se3r") transliterated and
     common dialect words mapped to their standard forms;
   - `keyword`: the full-text / trigram score of the keyword leg.
3. The best entry's confidence is a logistic function of its similarity and word overlap,
   its margins over the next entry (similarity, and combined score: do the vector and word
   evidence agree on it?), the share of question words found in no candidate ("sushi" in a
   restaurant's FAQ) and whether the entry has a version in the question's language. The
   weights are a logistic regression fitted on the evaluation sets in tests/data/eval/
   (top entry right = 1; wrong entry or out of knowledge = 0, weighted 2 and 4); the
   client's `confidence_threshold` is the minimum confidence to answer.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from wafaa.text import STOPWORDS, normalize

# Fitted on tests/data/eval (both sets, local and hashing embedders): see docs/knowledge.md.
WEIGHTS = {
    "similarity": 3.82,
    "overlap": 3.44,
    "similarity_margin": 3.64,
    "score_margin": 7.38,
    "unknown": -1.01,
    "same_language": -0.04,
}
BIAS = -2.26
# The lowest threshold at which no out-of-knowledge question of the sets got an answer
# (bench/answers.py, both offline embedders); each client can set its own
# (confidence_threshold; the evaluation suggests one for the client's data).
DEFAULT_THRESHOLD = 0.7
# The combined score: the vector and word evidence count about equally.
SIMILARITY_WEIGHT = 0.65
OVERLAP_WEIGHT = 0.35


@dataclass
class Candidate:
    """One retrieved chunk: `ref` is handed back to the caller with the decision."""

    text: str
    metadata: dict
    similarity: float | None
    keyword: float | None
    key: str
    ref: Any = None


@dataclass
class Scored:
    candidate: Candidate
    similarity: float
    overlap: float
    keyword: float
    score: float
    matched: list[bool] = field(default_factory=list)  # per question word: found here?


@dataclass
class Assessment:
    best: Candidate | None
    confidence: float
    features: dict = field(default_factory=dict)
    ranked: list[Scored] = field(default_factory=list)


def assess(question: str, candidates: list[Candidate], *, language: str = "") -> Assessment:
    """The best entry for `question` among `candidates`, with a confidence in 0..1."""
    if not candidates:
        return Assessment(None, 0.0)
    wanted = question_terms(question)
    terms = {id(c): entry_terms(c) for c in candidates}
    # A word found in many candidates ("price") says less than a rare one ("kunafa").
    keys: dict[str, set[str]] = {}
    for candidate in candidates:
        keys.setdefault(candidate.key, set()).update(terms[id(candidate)])
    weights = []
    for forms in wanted:
        df = sum(1 for found in keys.values() if forms & found)
        weights.append(math.log(1.0 + (len(keys) + 1) / (1.0 + df)))
    entries: dict[str, Scored] = {}
    for candidate in candidates:
        scored = _score(candidate, wanted, terms[id(candidate)], weights)
        current = entries.get(candidate.key)
        if current is None or scored.score > current.score:
            entries[candidate.key] = scored
    ranked = sorted(entries.values(), key=lambda s: -s.score)
    best, others = ranked[0], ranked[1:]
    # Question words found in no candidate at all ("sushi" in a restaurant's knowledge):
    # a sign the question is about something the knowledge does not cover.
    known = [any(s.matched[i] for s in ranked) for i in range(len(wanted))]
    unknown = sum(w for w, k in zip(weights, known, strict=True) if not k) / (sum(weights) or 1)
    features = {
        "similarity": best.similarity,
        "overlap": best.overlap,
        "similarity_margin": best.similarity - max((s.similarity for s in others), default=0.0),
        "score_margin": best.score - (others[0].score if others else 0.0),
        "unknown": unknown,
        "same_language": float(_has_language(best.candidate, language)),
    }
    logit = BIAS + sum(WEIGHTS[name] * value for name, value in features.items())
    confidence = 1.0 / (1.0 + math.exp(-logit))
    return Assessment(best.candidate, confidence, features, ranked)


def _score(
    candidate: Candidate, wanted: list[set[str]], found: set[str], weights: list[float]
) -> Scored:
    similarity = max(0.0, candidate.similarity or 0.0)
    grams = {word: _trigrams(word) for word in found}
    matches = [_match(forms, found, grams) for forms in wanted]
    overlap = sum(w * m for w, m in zip(weights, matches, strict=True)) / (sum(weights) or 1.0)
    score = SIMILARITY_WEIGHT * similarity + OVERLAP_WEIGHT * overlap
    return Scored(
        candidate, similarity, overlap, candidate.keyword or 0.0, score, [m > 0 for m in matches]
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
    if word in _DIALECT:
        forms |= {_stem(w) for w in _DIALECT[word].split()}
    if word.isascii() and word.isalnum() and (_ARABIZI_DIGIT.search(word) or len(word) >= 3):
        arabic = transliterate_arabizi(word)
        if len(arabic) >= 2:
            forms.add(_stem(arabic))
    return {f for f in forms if f}


def expand_query(question: str) -> str:
    """`question` plus the standard words its dialect words stand for, for retrieval."""
    extra = [_DIALECT[w] for w in _WORD.findall(normalize(question)) if w in _DIALECT]
    return f"{question} {' '.join(extra)}" if extra else question


def question_terms(question: str) -> list[set[str]]:
    """The question's content words, each as the set of forms it may take in an entry."""
    tokens = [w for w in _WORD.findall(normalize(question)) if len(w) > 1]
    content = [w for w in tokens if w not in STOPWORDS and not w.isdigit()] or tokens
    return [_forms(w) for w in dict.fromkeys(content)]


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
