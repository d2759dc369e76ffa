"""/inbox/ routes (namespace `desk`). The ids and URLs the browser tests rely on are fixed in
docs/inbox.md ("Page contract")."""

from django.urls import path

from desk import auth_views, views

app_name = "desk"

conversation = "<slug:slug>/c/<int:conversation_id>/"

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
]
