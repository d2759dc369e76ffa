"""One inbound shape for every channel, plus the rules shared by all providers.

Meta delivers WhatsApp and Instagram webhooks in two different formats. Each provider module
(`whatsapp.py`, `instagram.py`) turns its format into the dataclasses below, so everything
after parsing (storing, replying, status tracking) is written once for both channels.

This module is pure Python on purpose: no Django, no settings, no I/O. Configuration such as
the app secret is passed in as arguments, which keeps parsing testable with plain JSON fixtures.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WHATSAPP = "whatsapp"
INSTAGRAM = "instagram"
CHANNELS = (WHATSAPP, INSTAGRAM)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a customer sent to one of our channel accounts.

    `external_id` is the provider's message id (`wamid...` or Instagram `mid`) and is what makes
    storing idempotent: Meta redelivers webhooks, so the same id must be stored only once.

    `contact_key` is the identifier we key the contact on. On WhatsApp it is the business-scoped
    user id (BSUID) when Meta sends one, else the phone number (`wa_id`): a user who adopts a
    username may arrive with no phone number at all, so the BSUID is the only key that is always
    there once Meta rolls it out. Both raw identifiers are kept (`wa_id`, `user_id`) so the
    caller can match contacts first seen under the other one.

    `reply_to_external_id` is the id of the message this one refers to: the quoted message
    (WhatsApp `context.id`, Instagram `reply_to.mid`) or, for a reaction, the message reacted to.

    `payload` carries the machine-readable choice behind a tap: an interactive reply's id, a
    template button's payload, an Instagram quick reply or postback payload.
    """

    channel: str
    account_external_id: str
    external_id: str
    contact_key: str
    type: str
    timestamp: datetime
    text: str = ""
    wa_id: str | None = None
    user_id: str | None = None
    contact_name: str | None = None
    username: str | None = None
    media_id: str | None = None
    media_url: str | None = None
    media_mime_type: str | None = None
    reply_to_external_id: str | None = None
    payload: str | None = None
    # Meta's own error objects for messages it could not render (type 'unsupported').
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Instagram handover protocol: the event arrived on `standby`, i.e. another app is the
    # primary receiver of this conversation. The caller should store it but not answer.
    standby: bool = False
    # Edits and deletions ('edit', 'deleted'): the id of the message they change. They update
    # that message instead of being stored as new ones.
    target_external_id: str | None = None
    # A catalogue or cart order (WhatsApp 'order'): {catalog_id, note, items: [{retailer_id,
    # quantity, price, currency}], total, currency}; `text` holds a readable summary.
    order: dict[str, Any] | None = None
    # Where the customer came from (click-to-WhatsApp or Instagram ads, a product shown in the
    # chat): {source_type, source_id, source_url, headline, body, ctwa_clid, media_type,
    # media_url, product_retailer_id, catalog_id}, only the keys Meta sent.
    referral: dict[str, Any] | None = None
    # System notices ('system'): {kind, body, new_wa_id, identity} — e.g. the customer changed
    # their phone number (`user_changed_number`), so the contact must be re-keyed.
    system: dict[str, Any] | None = None
    # The customer's answer to a call permission request: {response, expires_at, is_permanent}.
    call_permission: dict[str, Any] | None = None
    # Every attachment of the message, in order ({type, media_id, url, title}); the first one
    # is also described by the media_* fields. Instagram post shares carry two.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # A message the business itself sent from the WhatsApp Business app on a number that also
    # uses the Cloud API (coexistence, `smb_message_echoes`): `contact_key` is the customer it
    # went to. Stored as the business's outbound message; it never gets a bot reply.
    echo: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


# Inbound types the bot never answers: they say nothing to reply to (a reaction, a notice, an
# ad click before any words) or they change an earlier message rather than add one.
NO_REPLY_TYPES = frozenset(
    {"reaction", "system", "edit", "deleted", "referral", "call_permission_reply"}
)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Meta's report on one of OUR outbound messages (sent, delivered, read, played, failed)."""

    channel: str
    account_external_id: str
    external_id: str
    status: str
    recipient: str | None
    timestamp: datetime
    errors: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """Everything one webhook POST carried.

    `ignored` lists events we understood and deliberately skip (echoes of our own messages,
    read receipts, fields we do not subscribe to), each as a short reason such as `echo` or
    `unknown_field:message_template_status_update`. `errors` lists malformed parts that were
    skipped; the valid parts of the same payload are still returned, because Meta batches
    several events per POST and one bad event must not lose its siblings.
    """

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def account_external_ids(self) -> list[str]:
        """Every account id the parsed events belong to, in first-seen order."""
        seen: dict[str, None] = {}
        for item in (*self.messages, *self.statuses):
            seen.setdefault(item.account_external_id, None)
        return list(seen)

    def for_account(self, account_external_id: str) -> ParsedWebhook:
        """The subset of this webhook that belongs to one channel account.

        An app-level webhook can carry events for several accounts (and so several tenants) in
        one POST; the caller routes each account's subset to its own client. `ignored` and
        `errors` describe the whole payload and are copied as they are.
        """
        return ParsedWebhook(
            messages=[m for m in self.messages if m.account_external_id == account_external_id],
            statuses=[s for s in self.statuses if s.account_external_id == account_external_id],
            ignored=list(self.ignored),
            errors=list(self.errors),
        )


# --- Delivery status ordering -------------------------------------------------------------

# Where each status sits on the way to the customer. Statuses our own outbound messages hold
# before Meta reports anything (queued, sending, ...) are rank 0; any status not listed here
# and not 'failed' is treated the same way, so a new local status cannot block Meta's updates.
# 'played' (a voice note was listened to) can only happen after 'read', so it ranks above it.
STATUS_ORDER: dict[str, int] = {
    "queued": 0,
    "pending": 0,
    "sending": 0,
    "accepted": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "played": 4,
}
FAILED = "failed"
META_STATUSES = ("sent", "delivered", "read", "played", FAILED)


def status_transition_allowed(current: str | None, new: str) -> bool:
    """Whether a message whose status is `current` may take status `new`.

    Meta does not promise webhook order (a 'read' may arrive before its 'delivered'), so:

    - a status never moves backwards along queued → sent → delivered → read → played, and
      skipping ahead is fine ('read' implies 'delivered', Meta even omits the latter);
    - the same status again is not a transition (False), so redeliveries are no-ops;
    - 'failed' applies only while nothing better than 'sent' is known: a message the customer
      already received has not failed, whatever arrives late;
    - 'failed' is final: nothing moves out of it. A late 'delivered' after 'failed' (seen with
      multi-device users) is ignored so that the failure an operator saw does not silently
      change; the raw webhook is still logged by the caller.
    - an unknown `new` status is never applied.
    """
    if current == new:
        return False
    if current == FAILED:
        return False
    current_rank = -1 if current is None else STATUS_ORDER.get(current, 0)
    if new == FAILED:
        return current_rank <= STATUS_ORDER["sent"]
    if new not in STATUS_ORDER:
        return False
    return STATUS_ORDER[new] > current_rank


# --- Signatures ---------------------------------------------------------------------------

SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE_PREFIX = "sha256="


def verify_signature(raw_body: bytes, header_value: str | None, app_secret: str) -> bool:
    """Check Meta's `X-Hub-Signature-256: sha256=<hex>` header against the raw request body.

    The HMAC must be computed over the exact bytes received: parsing and re-serialising the
    JSON changes spacing and escapes, and with them the digest. The comparison is constant-time.
    Anything unexpected (no header, wrong prefix, non-hex digest, empty secret, non-bytes body)
    returns False rather than raising, so the webhook view has a single branch to refuse.
    An empty secret is refused outright: HMAC under an empty key is a signature anyone can forge.
    """
    if not app_secret or not isinstance(header_value, str):
        return False
    if not isinstance(raw_body, bytes | bytearray | memoryview):
        return False
    header_value = header_value.strip()
    if not header_value.lower().startswith(_SIGNATURE_PREFIX):
        return False
    received = header_value[len(_SIGNATURE_PREFIX) :].strip().lower()
    if len(received) != 64:
        return False
    try:
        bytes.fromhex(received)
    except ValueError:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), bytes(raw_body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received)


def sign_body(raw_body: bytes, app_secret: str) -> str:
    """The header value Meta would send for `raw_body`; used by tests and the fake sender."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return _SIGNATURE_PREFIX + digest


# --- Small helpers shared by the parsers --------------------------------------------------


# Unix times above this are milliseconds: as seconds it would be the year 5138, as
# milliseconds it is March 1973, before any Meta webhook.
_MILLISECONDS_FROM = 100_000_000_000


def parse_unix_timestamp(value: Any, *, milliseconds: bool | None = False) -> datetime | None:
    """A UTC-aware datetime from Meta's unix timestamps (WhatsApp: seconds as a string;
    Instagram: milliseconds as an int, but seconds in test events and the `changes` shape).
    `milliseconds=None` decides by magnitude. None when the value is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if milliseconds is None:
        milliseconds = number >= _MILLISECONDS_FROM
    if milliseconds:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def as_str(value: Any) -> str | None:
    """A non-empty string id, or None. Meta sends ids as strings, but numbers appear in
    hand-made test payloads and some older events, so both are accepted."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def normalise_errors(errors: Any) -> list[dict[str, Any]]:
    """Meta error objects as `{code, title, message, details}` dicts (details from
    `error_data.details`), whatever subset of those keys Meta sent."""
    result = []
    for error in as_list(errors):
        if not isinstance(error, dict):
            continue
        result.append(
            {
                "code": error.get("code"),
                "title": error.get("title") or "",
                "message": error.get("message") or "",
                "details": as_dict(error.get("error_data")).get("details") or "",
            }
        )
    return result


# --- Shared walking of Meta's envelopes --------------------------------------------------------


class SkipPart(Exception):  # noqa: N818 - a control-flow signal, not an error to report
    """A part of the payload that cannot be used; the reason goes to `ParsedWebhook.errors`."""


class IgnorePart(Exception):  # noqa: N818 - a control-flow signal, not an error to report
    """A part we understand and deliberately skip; the reason goes to `ParsedWebhook.ignored`."""


def collect(build: Callable[[], Any], where: str, into: list[Any], result: ParsedWebhook) -> None:
    """Append `build()` to `into`; a skipped, ignored or broken part is recorded, not raised,
    because Meta batches events and one odd event must not lose its siblings."""
    try:
        into.append(build())
    except IgnorePart as reason:
        result.ignored.append(str(reason))
    except SkipPart as reason:
        result.errors.append(f"{where}: {reason}")
    except Exception as exc:
        result.errors.append(f"{where}: unexpected {type(exc).__name__}")


def iter_entries(payload: Any, object_name: str, result: ParsedWebhook):
    """Yield `(where, entry)` for each well-formed `entry[]` of a payload of `object_name`,
    recording in `result.errors` what is not (the payload itself, or an entry)."""
    if not isinstance(payload, dict) or payload.get("object") != object_name:
        article = "an" if object_name[0] in "aeiou" else "a"
        result.errors.append(f"not {article} {object_name} payload")
        return
    entries = payload.get("entry")
    if not isinstance(entries, list):
        result.errors.append("entry is not a list")
        return
    for index, entry in enumerate(entries):
        where = f"entry[{index}]"
        if isinstance(entry, dict):
            yield where, entry
        else:
            result.errors.append(f"{where}: not an object")
