"""Reply buttons for the bot's offers, and what a tap on one of them means.

When the bot cannot answer, it offers a person ("Shall I connect you with someone from our
team?"). The offer goes out with two reply buttons (WhatsApp `interactive.button`, Instagram
quick replies); a tap comes back as an interactive message whose payload is the button's id,
and the pipeline acts on it directly — a handoff, or a short acknowledgement — without the LLM.
"""

from __future__ import annotations

HANDOFF_YES = "wafaa:handoff:yes"
HANDOFF_NO = "wafaa:handoff:no"

# Button titles (WhatsApp allows 20 characters) and the answer to "no", per language.
_TITLES = {
    "en": ("Yes, a person", "No, thanks"),
    "ar": ("نعم، أحد الموظفين", "لا، شكرًا"),
    "fr": ("Oui, une personne", "Non, merci"),
    "es": ("Sí, una persona", "No, gracias"),
}
_DECLINED = {
    "en": "Alright! Ask me anything else whenever you like.",
    "ar": "حسنًا! اسألني عن أي شيء آخر متى شئت.",
    "fr": "D'accord ! Posez-moi une autre question quand vous voulez.",
    "es": "¡De acuerdo! Pregúntame cualquier otra cosa cuando quieras.",
}


def _language(language: str | None) -> str:
    code = (language or "en")[:2].lower()
    return code if code in _TITLES else "en"


def handoff_offer_buttons(language: str | None) -> list[dict[str, str]]:
    yes, no = _TITLES[_language(language)]
    return [{"id": HANDOFF_YES, "title": yes}, {"id": HANDOFF_NO, "title": no}]


def declined_message(language: str | None) -> str:
    return _DECLINED[_language(language)]


def tapped(pending) -> str | None:
    """HANDOFF_YES or HANDOFF_NO when the newest open message is a tap on an offer button."""
    payload = getattr(pending[-1], "payload", "") if pending else ""
    return payload if payload in (HANDOFF_YES, HANDOFF_NO) else None


def tap_language(pending) -> str:
    """The language of the offer that was tapped, from the button title the customer tapped."""
    text = (pending[-1].text or "").strip() if pending else ""
    for language, titles in _TITLES.items():
        if text in titles:
            return language
    return "en"
