"""Admin for client-schema models keeps no Django admin history.

Django's LogEntry lives in `public` and points at content types; objects shown on the
per-client admin site live in a client's schema (with its own content types), so the main
admin's history cannot follow them. Conversation events and logs record what staff did.
"""


class NoHistoryMixin:
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletion(self, request, obj, object_repr):
        return None

    def log_deletions(self, request, queryset):
        return None
