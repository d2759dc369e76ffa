"""The inbox's pages, htmx fragments and actions. Each view is thin: `client_view` has checked
the person and entered the client's schema; reads go through desk.selectors and
conversations.selectors, actions through the same services as the REST API
(conversations.handoff, conversations.agent_outbound), so pacing, retries, events, usage and
notifications are the API's.

Actions are plain POST forms answered with a redirect to the conversation (they work without
JavaScript; a refused one says why on the page). The list and the open conversation poll a
fragment every ~2 s with the stamp they were drawn from: an unchanged stamp is a 204 (htmx
swaps nothing), a changed one the fragment drawn anew (docs/inbox.md, "Live updates").
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from channels_app.models import ChannelAccount
from channels_app.templates import whatsapp_template_list
from conversations import agent_outbound, handoff
from conversations import selectors as conversation_selectors
from conversations.models import Conversation
from desk import selectors
from desk.access import client_view, clients_of, not_found
from wafaa.errors import ApplicationError

# What a refused action says, in the person's language (by the service's error code).
REFUSALS = {
    "conversation_closed": lambda: _(
        "This conversation is closed. Replies go to open conversations only."
    ),
    "window_closed": lambda: _(
        "The customer's last message is more than 24 hours old: WhatsApp only allows "
        "template messages now."
    ),
    "template_parameters": lambda: _("Fill in every parameter of the template."),
    "template_not_found": lambda: _("That template is no longer approved on this channel."),
    "templates_unavailable": lambda: _("Meta did not return this channel's templates; try again."),
}


def _refusal(error: ApplicationError) -> str:
    message = REFUSALS.get(error.code)
    return message() if message else error.message


def _actor(request) -> str:
    return request.user.email


def _common(request, client) -> dict:
    return {
        "client": client,
        "clients": clients_of(request.user),
        "handoff_count": selectors.handoff_count(),
    }


# --- the list ---------------------------------------------------------------------------------


def _list_context(request, client, since: str) -> dict:
    filters = selectors.InboxFilters.from_query(request.GET)
    page = selectors.inbox_page(
        filters=filters, agent_email=_actor(request), page=request.GET.get("page")
    )
    query = filters.as_query()
    if page.number > 1:
        query["page"] = str(page.number)
    return {
        "filters": filters,
        "page": page,
        "filter_query": urlencode(filters.as_query()),
        "poll_query": urlencode({**query, "since": since}),
    }


@never_cache
@require_GET
@client_view()
def inbox_view(request, client):
    since = selectors.inbox_stamp()  # before anything is read: see _conversation_context
    context = {**_common(request, client), **_list_context(request, client, since)}
    context["ad_sources"] = selectors.ad_sources()
    return render(request, "desk/inbox.html", context)


@never_cache
@require_GET
@client_view()
def inbox_list_fragment(request, client):
    """The list's poll: 204 when nothing changed since the stamp it was drawn from."""
    since = selectors.inbox_stamp()
    if request.GET.get("since") == since:
        return HttpResponse(status=204)
    context = {
        "client": client,
        "handoff_count": selectors.handoff_count(),
        "oob": True,
        **_list_context(request, client, since),
    }
    return render(request, "desk/_list.html", context)


# --- one conversation -------------------------------------------------------------------------


def _conversation_context(request, client, conversation: Conversation, since: str) -> dict:
    """`since`, the poll's stamp, is taken before the conversation is read: a change committed
    while the page is drawn then differs from it and comes with the next poll. Taken after,
    it could already include a change the page does not show (a reply drawn `queued` whose
    `sent` landed in between), and every poll would answer 204 until the minute turns."""
    return {
        "conversation": conversation,
        "entries": selectors.transcript(conversation),
        "window_left": selectors.window_left(conversation),
        "poll_query": urlencode({"since": since}),
    }


def _templates(conversation: Conversation) -> tuple[list[dict], str]:
    """The approved templates the reply box offers when the window is closed (the API's
    list, cached), or why there are none."""
    if conversation.channel != "whatsapp":
        return [], ""
    account = ChannelAccount.objects.filter(pk=conversation.channel_account_id).first()
    if account is None:
        return [], _("This conversation's channel account no longer exists.")
    try:
        return whatsapp_template_list(account=account), ""
    except ApplicationError as error:
        return [], _refusal(error)


@never_cache
@require_GET
@client_view()
def conversation_view(request, client, conversation_id):
    handoff.conversation_mark_read(conversation_id=conversation_id)  # the agent sees them now
    since = selectors.conversation_stamp(conversation_id=conversation_id)
    conversation = conversation_selectors.conversation_get(conversation_id=conversation_id)
    if conversation is None or since is None:
        return not_found(request)
    context = {
        **_common(request, client),
        **_conversation_context(request, client, conversation, since),
    }
    window_open = context["window_left"] is not None or conversation.channel != "whatsapp"
    templates, templates_error = ([], "") if window_open else _templates(conversation)
    context.update(
        window_open=window_open,
        templates=templates,
        templates_error=templates_error,
        language=selectors.customer_language(client=client, conversation=conversation),
    )
    return render(request, "desk/conversation.html", context)


@never_cache
@require_GET
@client_view()
def conversation_live_fragment(request, client, conversation_id):
    """The open conversation's poll: 204 when nothing changed since its stamp."""
    stamp = selectors.conversation_stamp(conversation_id=conversation_id)
    if stamp is None:
        return not_found(request)
    if request.GET.get("since") == stamp:
        return HttpResponse(status=204)
    # New customer messages are drawn on the agent's open page: seen, so no longer unread.
    if handoff.conversation_mark_read(conversation_id=conversation_id):
        stamp = selectors.conversation_stamp(conversation_id=conversation_id)
    conversation = conversation_selectors.conversation_get(conversation_id=conversation_id)
    context = {
        "client": client,
        "handoff_count": selectors.handoff_count(),
        "oob": True,
        **_conversation_context(request, client, conversation, stamp),
    }
    return render(request, "desk/_conversation_live.html", context)


# --- actions ----------------------------------------------------------------------------------


def _act(request, client, conversation_id, action):
    """Run one action on the conversation (404 when it is not this client's), then back to
    the conversation, saying what was refused and why."""
    conversation = conversation_selectors.conversation_get_plain(conversation_id=conversation_id)
    if conversation is None:
        return not_found(request)
    try:
        done = action(conversation)
    except ApplicationError as error:
        messages.error(request, _refusal(error))
    else:
        if done:
            messages.success(request, done)
    return redirect("desk:conversation", slug=client.slug, conversation_id=conversation_id)


@require_POST
@client_view()
def take_over_view(request, client, conversation_id):
    def action(conversation):
        handoff.conversation_handoff(
            conversation=conversation, reason="agent_took_over", actor=_actor(request)
        )
        return _("You took over this conversation: the bot stays quiet.")

    return _act(request, client, conversation_id, action)


@require_POST
@client_view()
def hand_back_view(request, client, conversation_id):
    def action(conversation):
        handoff.conversation_resume(conversation=conversation, actor=_actor(request))
        return _("Handed back to the bot.")

    return _act(request, client, conversation_id, action)


@require_POST
@client_view()
def close_view(request, client, conversation_id):
    def action(conversation):
        handoff.conversation_close(conversation=conversation, actor=_actor(request))
        return _("Conversation closed.")

    return _act(request, client, conversation_id, action)


@require_POST
@client_view()
def reply_view(request, client, conversation_id):
    text = request.POST.get("text", "").strip()

    def action(conversation):
        if not text:
            messages.error(request, _("Write a reply first."))
            return ""
        if len(text) > 4096:
            messages.error(request, _("A reply can be at most 4096 characters long."))
            return ""
        handoff.agent_reply(conversation=conversation, text=text, agent_email=_actor(request))
        return ""

    return _act(request, client, conversation_id, action)


@require_POST
@client_view()
def template_send_view(request, client, conversation_id):
    name = request.POST.get("name", "")[:512]
    language = request.POST.get("language", "")[:16]
    parameters = [p.strip()[:1024] for p in request.POST.getlist("parameters")][:20]

    def action(conversation):
        if not all(parameters):
            messages.error(request, _("Fill in every parameter of the template."))
            return ""
        agent_outbound.template_send(
            conversation=conversation,
            name=name,
            language=language,
            parameters=parameters,
            agent_email=_actor(request),
        )
        return _("Template sent.")

    return _act(request, client, conversation_id, action)
