"""Input and output serializers of the knowledge endpoints."""

from rest_framework import serializers

from knowledge.models import Document
from wafaa.api.serializers import StrictInputSerializer


class DocumentUploadInputSerializer(StrictInputSerializer):
    """A file (multipart) or a text (JSON or form); exactly one of the two."""

    # Empty files and blank texts pass here on purpose: the service refuses them with the
    # same `empty_file` code as every other unreadable upload.
    file = serializers.FileField(required=False, allow_empty_file=True)
    text = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=5_000_000
    )
    format = serializers.ChoiceField(
        choices=["txt", "md", "csv", "html"],
        required=False,
        default="txt",
        help_text="How to read `text` (a file's type is detected from its content).",
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")

    def validate(self, attrs):
        has_file, has_text = "file" in attrs, "text" in attrs
        if has_file == has_text:
            raise serializers.ValidationError(
                {"file": ["Send either a file (multipart) or a text (JSON), not both or none."]}
            )
        if has_text and not attrs["title"].strip():
            raise serializers.ValidationError({"title": ["A title is required with a text."]})
        return attrs


class DocumentOutputSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "source",
            "original_filename",
            "content_type",
            "kind",
            "size_bytes",
            "checksum",
            "language",
            "status",
            "error",
            "error_code",
            "warnings",
            "chunks_total",
            "chunks_done",
            "progress",
            "embedder",
            "dimensions",
            "created_by_email",
            "created_at",
            "updated_at",
        ]


class DocumentUploadOutputSerializer(DocumentOutputSerializer):
    status_url = serializers.SerializerMethodField()
    duplicate = serializers.SerializerMethodField(
        help_text="True when the same content was uploaded before: this is that document."
    )

    class Meta(DocumentOutputSerializer.Meta):
        fields = [*DocumentOutputSerializer.Meta.fields, "status_url", "duplicate"]

    def get_status_url(self, obj) -> str:
        return self.context["status_url"]

    def get_duplicate(self, obj) -> bool:
        return self.context["duplicate"]


class DocumentFilterSerializer(StrictInputSerializer):
    status = serializers.ChoiceField(choices=Document.Status.choices, required=False)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)


class SearchInputSerializer(StrictInputSerializer):
    # Long questions are cut by the service, not refused: a customer may paste a paragraph.
    q = serializers.CharField(allow_blank=True, trim_whitespace=True, max_length=10_000)
    k = serializers.IntegerField(required=False, default=5, min_value=1, max_value=50)


class SearchResultSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    document_id = serializers.CharField()
    document_title = serializers.CharField()
    text = serializers.CharField()
    metadata = serializers.JSONField()
    score = serializers.FloatField(help_text="Reciprocal rank fusion score.")
    similarity = serializers.FloatField(
        allow_null=True, help_text="Cosine similarity of the vector hit (null: keyword only)."
    )
    keyword_rank = serializers.FloatField(
        allow_null=True, help_text="Keyword score 0..1 (null: vector hit only)."
    )


class SearchOutputSerializer(serializers.Serializer):
    query = serializers.CharField()
    k = serializers.IntegerField()
    results = SearchResultSerializer(many=True)
