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
}
UNSUPPORTED_MEDIA_MESSAGES = {
    "en": "Sorry, I can only read text messages for now. Could you type your question?",
    "ar": "عذرًا، أستطيع قراءة الرسائل النصية فقط حاليًا. هل يمكنك كتابة سؤالك؟",
    "fr": "Désolé, je ne peux lire que les messages texte pour le moment. "
    "Pouvez-vous écrire votre question ?",
    "es": "Lo siento, por ahora solo puedo leer mensajes de texto. ¿Puedes escribir tu pregunta?",
}
HANDOFF_MESSAGES = {
    "en": "I'm connecting you with a person from our team. They will reply here soon.",
    "ar": "سأحولك إلى أحد أفراد فريقنا، وسيرد عليك هنا قريبًا.",
    "fr": "Je vous mets en relation avec une personne de notre équipe. "
    "Elle vous répondra ici bientôt.",
    "es": "Te pongo en contacto con una persona de nuestro equipo. Te responderá aquí pronto.",
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

_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
_LATIN_FUNCTION_WORDS = {
    "en": "the is are and you your my i to for of do does can what how where when hi hello "
    "thanks thank please have has price much many",
    "fr": "le la les des est et je vous pour pas une du que qui avec sur dans bonjour merci "
    "combien quel quelle quels comment où votre vos mon ma ça c'est est-ce svp",
    "es": "el los las es y yo usted para por una del que con hola gracias cuánto cuanto "
    "cómo como dónde donde qué está tienen puedo quiero mi su favor",
}
_LATIN_WORDS = {lang: set(text.split()) for lang, text in _LATIN_FUNCTION_WORDS.items()}


def detect_language(text: str, default: str = "en") -> str:
    """'ar' for mostly Arabic script, 'fr'/'es' by their common words, else 'en'.

    Text without letters (emoji, numbers) gives `default`, so a caller can fall back to the
    conversation's last known language.
    """
    letters = [ch for ch in text or "" if ch.isalpha()]
    if not letters:
        return default
    arabic = sum(1 for ch in letters if _ARABIC_SCRIPT.match(ch))
    if arabic / len(letters) >= 0.4:
        return "ar"
    lowered = (text or "").lower()
    tokens = re.findall(r"[\w'-]+", lowered)
    scores = {lang: sum(1 for t in tokens if t in vocab) for lang, vocab in _LATIN_WORDS.items()}
    if any(ch in lowered for ch in "ñ¿¡"):
        scores["es"] += 2
    if any(ch in lowered for ch in "çèêàùœâî"):
        scores["fr"] += 2
    best = max(scores, key=lambda lang: (scores[lang], lang == "en"))
    return best if scores[best] else "en"


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
        text = metadata.get("answer") or _faq_answer(best["text"])
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
