"""/inbox/ routes (namespace `desk`). The ids and URLs the browser tests rely on are fixed in
docs/inbox.md ("Page contract")."""

from django.urls import path

from desk import auth_views, knowledge_views, views

app_name = "desk"

conversation = "<slug:slug>/c/<int:conversation_id>/"
knowledge = "<slug:slug>/knowledge/"
document = f"{knowledge}<uuid:document_id>/"

urlpatterns = [
    path("", auth_views.home_view, name="home"),
    path("login/", auth_views.login_view, name="login"),
    path("logout/", auth_views.logout_view, name="logout"),
    path("<slug:slug>/", views.inbox_view, name="inbox"),
    path("<slug:slug>/list/", views.inbox_list_fragment, name="inbox-list"),
    path(conversation, views.conversation_view, name="conversation"),
    path(f"{conversation}live/", views.conversation_live_fragment, name="conversation-live"),
    path(f"{conversation}take-over/", views.take_over_view, name="take-over"),
    path(f"{conversation}hand-back/", views.hand_back_view, name="hand-back"),
    path(f"{conversation}close/", views.close_view, name="close"),
    path(f"{conversation}reply/", views.reply_view, name="reply"),
    path(f"{conversation}template/", views.template_send_view, name="template-send"),
    # The knowledge page (owners and admins): desk/knowledge_views.py.
    path(knowledge, knowledge_views.knowledge_view, name="knowledge"),
    path(
        f"{knowledge}documents/",
        knowledge_views.knowledge_documents_fragment,
        name="knowledge-documents",
    ),
    path(f"{knowledge}upload/", knowledge_views.knowledge_upload_view, name="knowledge-upload"),
    path(f"{document}delete/", knowledge_views.knowledge_delete_view, name="knowledge-delete"),
    path(f"{document}reindex/", knowledge_views.knowledge_reindex_view, name="knowledge-reindex"),
]
