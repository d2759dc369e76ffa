"""Offline answers without a language model, and the bot's fixed messages per language.

Without OPENAI_API_KEY Wafaa still answers: `extractive_answer` returns the answer part of
the best-matching FAQ pair, or the most relevant sentences of the best chunk, when retrieval
is confident enough; otherwise the "I don't know, shall I connect you with a person?"
message in the customer's language. It never makes anything up, and it cannot translate:
an English chunk is quoted in English.

`detect_language` is a cheap script-and-stopword guess (Arabic script → 'ar'; French and
Spanish by their function words; else 'en'), good enough to pick a canned message.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from wafaa.text import STOPWORDS, split_sentences, truncate, words

FALLBACK_MESSAGES = {
    "en": "Sorry, I don't have the answer to that. Would you like me to connect you with "
    "a person from our team?",
    "ar": "عذرًا، لا أملك إجابة عن هذا السؤال. هل تريد أن أوصلك بأحد أفراد فريقنا؟",
    "fr": "Désolé, je n'ai pas la réponse à cette question. Voulez-vous que je vous mette "
    "en relation avec une personne de notre équipe ?",
    "es": "Lo siento, no tengo la respuesta a eso. ¿Quieres que te ponga en contacto con "
    "una persona de nuestro equipo?",
    "fa": "متأسفم، پاسخ این سؤال را ندارم. می‌خواهید شما را به یکی از همکارانمان وصل کنم؟",
    "ur": "معذرت، میرے پاس اس کا جواب نہیں ہے۔ کیا میں آپ کو ہماری ٹیم کے کسی فرد سے ملا دوں؟",
}
UNSUPPORTED_MEDIA_MESSAGES = {
    "en": "Sorry, I can only read text messages for now. Could you type your question?",
    "ar": "عذرًا، أستطيع قراءة الرسائل النصية فقط حاليًا. هل يمكنك كتابة سؤالك؟",
    "fr": "Désolé, je ne peux lire que les messages texte pour le moment. "
    "Pouvez-vous écrire votre question ?",
    "es": "Lo siento, por ahora solo puedo leer mensajes de texto. ¿Puedes escribir tu pregunta?",
    "fa": "متأسفم، فعلاً فقط می‌توانم پیام‌های متنی را بخوانم. می‌توانید سؤالتان را بنویسید؟",
    "ur": "معذرت، میں ابھی صرف تحریری پیغامات پڑھ سکتا ہوں۔ کیا آپ اپنا سوال لکھ سکتے ہیں؟",
}
HANDOFF_MESSAGES = {
    "en": "I'm connecting you with a person from our team. They will reply here soon.",
    "ar": "سأحولك إلى أحد أفراد فريقنا، وسيرد عليك هنا قريبًا.",
    "fr": "Je vous mets en relation avec une personne de notre équipe. "
    "Elle vous répondra ici bientôt.",
    "es": "Te pongo en contacto con una persona de nuestro equipo. Te responderá aquí pronto.",
    "fa": "شما را به یکی از همکارانمان وصل می‌کنم. به‌زودی همین‌جا پاسخ می‌دهد.",
    "ur": "میں آپ کو ہماری ٹیم کے ایک فرد سے ملا رہا ہوں۔ وہ جلد یہیں جواب دیں گے۔",
}


def _message(messages: dict[str, str], language: str | None) -> str:
    return messages.get((language or "en")[:2].lower(), messages["en"])


def fallback_message(language: str | None) -> str:
    return _message(FALLBACK_MESSAGES, language)


def unsupported_media_message(language: str | None) -> str:
    return _message(UNSUPPORTED_MEDIA_MESSAGES, language)


def handoff_message(language: str | None) -> str:
    return _message(HANDOFF_MESSAGES, language)


# --------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------

# Arabizi: Arabic written in Latin letters, digits standing for Arabic sounds ("se3r",
# "a7jez") or its everyday words. Read as Arabic: such a customer reads Arabic answers.
_ARABIZI_DIGITS = re.compile(r"(?<![\d])[a-z]*[a-z][2-9]|[2-9][a-z]+", re.IGNORECASE)
_ARABIZI_WORDS = frozenset(
    [
        "wach",
        "wash",
        "chno",
        "chnou",
        "shu",
        "shou",
        "3andkom",
        "3ndkom",
        "ana",
        "enta",
        "enti",
        "momken",
        "mumkin",
        "kam",
        "ch7al",
        "chhal",
        "b9addach",
        "bghit",
        "bdi",
        "dyal",
        "dyali",
        "fin",
        "wen",
        "wein",
        "feen",
        "inta",
        "ya3ni",
    ]
)
_LANGUAGES = ("en", "ar", "fr", "es", "fa", "ur", "de", "it", "pt", "tr")
_identifier_lock = threading.Lock()
_identifier_instance = None


def _identifier():
    """py3langid's model (all its languages), loaded once per process (about 0.5 s)."""
    global _identifier_instance
    if _identifier_instance is None:
        with _identifier_lock:
            if _identifier_instance is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier_instance = LanguageIdentifier.from_model_file(MODEL_FILE)
    return _identifier_instance


def detect_language(
    text: str, default: str = "en", *, languages: list[str] | tuple[str, ...] | None = None
) -> str:
    """The language of `text` (ISO 639-1), among `languages` (the client's configured
    ones; Persian and Urdu are always candidates so their script is not read as Arabic).

    py3langid (a maintained naive-Bayes model) decides; Arabizi is recognised first. Text
    without letters (emoji, numbers) gives `default`, so a caller can fall back to the
    conversation's last known language.
    """
    text = text or ""
    if not any(ch.isalpha() for ch in text):
        return default
    allowed = tuple(sorted({*(languages or _LANGUAGES), "fa", "ur"}))
    if "ar" in allowed:
        tokens = re.findall(r"\w+", text.lower())
        arabizi = sum(1 for t in tokens if t in _ARABIZI_WORDS or _ARABIZI_DIGITS.fullmatch(t))
        if tokens and text.isascii() and arabizi and arabizi >= len(tokens) / 4:
            return "ar"
    # The most likely of the allowed languages (one model for every client's choice).
    for language, _ in _identifier().rank(text):
        if language in allowed:
            return language
    return default


# --------------------------------------------------------------------------------------------
# Extractive answer
# --------------------------------------------------------------------------------------------


@dataclass
class AnswerResult:
    text: str
    used_chunks: list = field(default_factory=list)  # chunk ids (or list indexes without ids)
    confident: bool = False
    language: str = "en"


_EMPHASIS = re.compile(r"(\*\*|__|`)")


def extractive_answer(
    question: str,
    chunks: list[dict],
    min_score: float,
    *,
    language: str | None = None,
    max_chars: int = 600,
) -> AnswerResult:
    """Answer from the best chunk (dicts with text, metadata, score, optional id).

    A FAQ chunk answers with its answer part; any other chunk with its sentences that share
    the most words with the question (and those right after them). Below `min_score`, the
    result is not confident and its text is the fallback message in the customer's language.
    """
    language = language or detect_language(question)
    ranked = [
        (index, chunk)
        for index, chunk in enumerate(chunks or [])
        if (chunk.get("text") or "").strip()
    ]
    if not ranked:
        return AnswerResult(fallback_message(language), [], False, language)
    index, best = max(ranked, key=lambda pair: float(pair[1].get("score") or 0.0))
    if float(best.get("score") or 0.0) < min_score:
        return AnswerResult(fallback_message(language), [], False, language)

    metadata = best.get("metadata") or {}
    if metadata.get("kind") == "faq":
        # A bilingual FAQ row answers in the customer's language when it has that version.
        answers = metadata.get("answers") or {}
        text = answers.get(language[:2]) or metadata.get("answer") or _faq_answer(best["text"])
    else:
        text = _best_passage(question, _body(best["text"], metadata), max_chars)
    text = truncate(_clean(text), max_chars, prefer_sentence=True)
    if not text:
        return AnswerResult(fallback_message(language), [], False, language)
    chunk_ref = best.get("id", index)
    return AnswerResult(text, [chunk_ref], True, language)


def _faq_answer(text: str) -> str:
    match = re.search(r"(?:^|\n)A:\s*", text)
    return text[match.end() :] if match else text


def _body(text: str, metadata: dict) -> str:
    """The chunk without the heading line the chunker puts in front for context."""
    heading = metadata.get("heading")
    first, sep, rest = text.partition("\n\n")
    if heading and sep and heading in first:
        return rest
    return text


def _best_passage(question: str, body: str, max_chars: int) -> str:
    sentences = split_sentences(body, lines=True)
    if not sentences:
        return body
    wanted = {w for w in words(question) if w not in STOPWORDS}

    def overlap(sentence: str) -> float:
        found = 0.0
        for word in {w for w in words(sentence) if w not in STOPWORDS}:
            if word in wanted:
                found += 1.0
            # Shared stem: plurals, conjugations, Arabic prefixes ("التوصيل" vs "توصيل").
            elif len(word) >= 4 and any(
                len(w) >= 4 and (word[:4] == w[:4] or word.endswith(w) or w.endswith(word))
                for w in wanted
            ):
                found += 0.5
        return found

    scores = [overlap(s) for s in sentences]
    start = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    if scores[start] == 0:
        start = 0  # nothing in common (another language): the chunk's opening says most
    passage = sentences[start]
    for sentence in sentences[start + 1 :]:
        if len(passage) + 1 + len(sentence) > max_chars:
            break
        passage = f"{passage} {sentence}"
    return passage


def _clean(text: str) -> str:
    lines = [re.sub(r"^#+\s*", "", line) for line in text.strip().split("\n")]
    return _EMPHASIS.sub("", "\n".join(lines)).strip()
