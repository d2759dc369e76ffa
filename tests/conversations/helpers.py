"""Helpers for conversation tests: knowledge in a client schema, inbound messages."""

from __future__ import annotations

import hashlib
import time
import uuid

from django.db import connection

from channels_app.providers import InboundMessage
from knowledge import selectors
from knowledge.models import Chunk, Document
from wafaa.ai_config import get_embedder

FAQ = [
    ("What are your opening hours?", "We are open every day from 8am to 10pm."),
    ("Do you deliver?", "Yes, we deliver within 5 km for 10 MAD; free above 100 MAD."),
    ("How much is a cappuccino?", "A cappuccino costs 18 MAD."),
    ("Can I get a refund?", "Refunds are possible within 7 days with the receipt."),
]


def add_faq_knowledge(faq=FAQ) -> Document:
    """A ready FAQ document with embedded chunks in the current client schema."""
    embedder = get_embedder()
    body = "\n".join(f"{q},{a}" for q, a in faq).encode()
    document = Document.objects.create(
        title="FAQ",
        source="text",
        kind="csv",
        checksum=hashlib.sha256(body).hexdigest(),
        content=body,
        status="ready",
        embedder=embedder.name,
        dimensions=embedder.dimensions,
    )
    texts = [f"Q: {q}\nA: {a}" for q, a in faq]
    vectors = embedder.embed_documents(texts)
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=i,
            text=text,
            embedding=vector,
            embedder=embedder.name,
            metadata={"kind": "faq", "question": faq[i][0]},
        )
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE knowledge_chunk SET search_vector = {selectors.SEARCH_VECTOR_SQL} "
            "WHERE document_id = %s",
            [document.pk],
        )
    return document


def inbound(
    text: str,
    *,
    message_id: str | None = None,
    wa_id: str = "15551234567",
    type_: str = "text",
    phone_id: str = "106540352242922",
) -> InboundMessage:
    from datetime import UTC, datetime

    return InboundMessage(
        channel="whatsapp",
        account_external_id=phone_id,
        external_id=message_id or f"wamid.{uuid.uuid4().hex}",
        contact_key=wa_id,
        type=type_,
        timestamp=datetime.fromtimestamp(time.time(), UTC),
        text=text,
        wa_id=wa_id,
        contact_name="Test Customer",
    )
