"""Sample knowledge of the demo client (a coffee shop), in English and Arabic.

`demo_knowledge_ensure(client)` stores and indexes it synchronously when the client has no
documents yet, so `make run` answers questions about opening hours, prices, delivery,
refunds, location and wifi right away. It goes through the same upload and ingestion
services as a real client's files.
"""

from __future__ import annotations

import logging

from knowledge import services
from knowledge.models import Document
from wafaa.ai.embeddings import EmbeddingTransientError

logger = logging.getLogger(__name__)

FAQ_CSV = """question,answer
What are your opening hours?,"We are open every day from 7:30 am to 11 pm, and from 9 am on Fridays."
How much is a coffee?,"Espresso 12 MAD, cappuccino 18 MAD, latte 20 MAD, iced coffee 22 MAD. Pastries from 8 MAD."
Do you deliver?,"Yes. We deliver within 5 km of the shop from 9 am to 10 pm. Delivery costs 10 MAD and is free for orders above 100 MAD."
How long does delivery take?,"Usually 30 to 45 minutes, a little longer on Friday evenings."
Can I get a refund?,"Yes. If your order is wrong or not good, tell us within 24 hours with your order number and we refund it or make it again."
Where are you located?,"12 Rue Ibn Battouta, Gueliz, Marrakech, next to the central post office. There is parking in front."
Do you have wifi?,"Yes, free wifi for customers. The network is DemoCoffee and the password is printed on your receipt."
Can I pay by card?,"Yes, we accept cash, bank cards and mobile payment."
ما هي أوقات العمل؟,"نفتح كل يوم من الساعة 7:30 صباحا حتى 11 ليلا، ويوم الجمعة من الساعة 9 صباحا."
كم ثمن القهوة؟,"الإسبريسو 12 درهم، الكابتشينو 18 درهم، اللاتيه 20 درهم، القهوة المثلجة 22 درهم. المعجنات ابتداء من 8 دراهم."
هل لديكم خدمة التوصيل؟,"نعم. نوصل الطلبات داخل 5 كلم من المقهى من 9 صباحا إلى 10 ليلا. ثمن التوصيل 10 دراهم، ومجاني للطلبات فوق 100 درهم."
هل يمكنني استرجاع المال؟,"نعم. إذا كان طلبك خاطئا أو غير جيد، أخبرنا خلال 24 ساعة مع رقم الطلب وسنعيد لك المال أو نحضره من جديد."
أين يوجد المقهى؟,"12 شارع ابن بطوطة، جليز، مراكش، بجانب البريد المركزي. يوجد موقف سيارات أمام المقهى."
هل يوجد واي فاي؟,"نعم، واي فاي مجاني للزبائن. اسم الشبكة DemoCoffee وكلمة السر مطبوعة على الفاتورة."
"""

POLICY_MD = """# Demo Coffee Shop — customer policy

## Orders and delivery

Orders can be placed in the shop, by phone, or on WhatsApp. Deliveries leave the shop from
9 am to 10 pm, within 5 km. Delivery costs 10 MAD and is free above 100 MAD. If a delivery
is more than 30 minutes late, the delivery fee is refunded.

## Refunds and complaints

We refund or remake any order that is wrong, cold or damaged, if you tell us within 24 hours
and give your order number. Refunds are paid back the way you paid, within 3 working days.
Gift cards are not refundable.

## Allergies

Our pastries may contain nuts, milk, eggs and gluten. Ask the staff for the list of
ingredients before you order.

## سياسة الاسترجاع

نسترجع المال أو نعيد تحضير أي طلب خاطئ أو بارد أو تالف إذا أخبرتنا خلال 24 ساعة مع رقم
الطلب. يتم إرجاع المال بنفس طريقة الدفع خلال 3 أيام عمل. بطاقات الهدايا غير قابلة للاسترجاع.
"""

DEMO_DOCUMENTS = [
    ("Coffee shop FAQ (English and Arabic)", "faq.csv", "text/csv", FAQ_CSV),
    ("Customer policy", "policy.md", "text/markdown", POLICY_MD),
]


def demo_knowledge_ensure(client) -> int:
    """Add and index the demo documents if the client has none; return how many were added.

    Runs in the client's schema (the caller sets it). Indexing happens here, synchronously;
    if the embedding service is unavailable the documents are left to the ingest queue.
    """
    if Document.objects.exists():
        return 0
    added = 0
    for title, filename, content_type, text in DEMO_DOCUMENTS:
        result = services.document_upload(
            client=client,
            content=text.encode("utf-8"),
            filename=filename,
            content_type=content_type,
            title=title,
            created_by_email="demo",
            enqueue=False,
        )
        added += int(result.created)
        try:
            services.document_ingest(document=result.document)
        except EmbeddingTransientError:
            logger.warning("embedding service unavailable: demo knowledge indexed later")
            services.document_reindex(document=result.document)
    return added
