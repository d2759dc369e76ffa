from django.urls import path

from channels_app.api import views

urlpatterns = [
    path("channels", views.ChannelAccountListCreateApi.as_view(), name="channel-list"),
    path(
        "channels/<int:channel_id>", views.ChannelAccountDetailApi.as_view(), name="channel-detail"
    ),
    path("channels/<int:channel_id>/check", views.ChannelCheckApi.as_view(), name="channel-check"),
    path(
        "channels/<int:channel_id>/templates",
        views.ChannelTemplateListApi.as_view(),
        name="channel-templates",
    ),
]
