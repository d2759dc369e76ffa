from django.urls import path

from conversations.api import views

urlpatterns = [
    path("conversations", views.ConversationListApi.as_view(), name="conversation-list"),
    path(
        "conversations/<int:conversation_id>",
        views.ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<int:conversation_id>/messages",
        views.ConversationMessageCreateApi.as_view(),
        name="conversation-reply",
    ),
    path(
        "conversations/<int:conversation_id>/templates",
        views.ConversationTemplateSendApi.as_view(),
        name="conversation-template-send",
    ),
    path(
        "conversations/<int:conversation_id>/media",
        views.ConversationMediaReplyApi.as_view(),
        name="conversation-media-reply",
    ),
    path(
        "conversations/<int:conversation_id>/handoff",
        views.ConversationHandoffApi.as_view(),
        name="conversation-handoff",
    ),
    path(
        "conversations/<int:conversation_id>/read",
        views.ConversationReadApi.as_view(),
        name="conversation-read",
    ),
    path(
        "conversations/<int:conversation_id>/resume",
        views.ConversationResumeApi.as_view(),
        name="conversation-resume",
    ),
    path(
        "conversations/<int:conversation_id>/close",
        views.ConversationCloseApi.as_view(),
        name="conversation-close",
    ),
    path("contacts", views.ContactListApi.as_view(), name="contact-list"),
    path("contacts/<int:contact_id>", views.ContactDetailApi.as_view(), name="contact-detail"),
    path("usage", views.UsageApi.as_view(), name="usage"),
    path("orders", views.OrderListApi.as_view(), name="order-list"),
    # Under knowledge/ for the client's eyes; here because it drives the reply drafting.
    path("knowledge/evaluate", views.AnswerEvaluationStartApi.as_view(), name="answer-evaluate"),
    path(
        "knowledge/evaluate/<uuid:evaluation_id>",
        views.AnswerEvaluationDetailApi.as_view(),
        name="answer-evaluation",
    ),
    path("callback-secret", views.CallbackSecretRotateApi.as_view(), name="callback-secret"),
]
