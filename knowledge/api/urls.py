"""/api/v1/clients/<client_id>/knowledge/..."""

from django.urls import path

from knowledge.api import views

urlpatterns = [
    path("upload", views.DocumentUploadApi.as_view(), name="knowledge-upload"),
    path("documents", views.DocumentListApi.as_view(), name="knowledge-document-list"),
    path(
        "documents/<uuid:doc_id>",
        views.DocumentDetailApi.as_view(),
        name="knowledge-document-detail",
    ),
    path(
        "documents/<uuid:doc_id>/reindex",
        views.DocumentReindexApi.as_view(),
        name="knowledge-document-reindex",
    ),
    path("search", views.KnowledgeSearchApi.as_view(), name="knowledge-search"),
]
