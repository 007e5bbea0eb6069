"""Admin pages of the core app."""

from django.contrib import admin

from core.models import APIToken, Heartbeat


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "read_only", "created", "expires", "last_used")
    list_filter = ("read_only",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "created", "last_used")
    exclude = ("key_hash",)

    def has_add_permission(self, request) -> bool:
        return False  # created on the Tokens page or with manage.py create_token, so the secret is shown once


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("component", "name", "hostname", "last_seen")
    readonly_fields = ("component", "name", "hostname", "last_seen")
