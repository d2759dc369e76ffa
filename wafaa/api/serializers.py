"""Serializer bases every app's API shares."""

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo is an error and not a silent no-op."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {field: ["Unknown field."] for field in sorted(unknown)}
                )
        return super().to_internal_value(data)
