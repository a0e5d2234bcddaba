from django.contrib import admin

from monitoring.audit import AuditedAdmin
from router.models import ApiKey, RequestTrace


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, admin.ModelAdmin):
    """Keys are created through the API or the dashboard (which show the clear key once), not here."""

    audit_area = "API_KEY"
    list_display = ["name", "prefix", "created_by", "created_at", "revoked_at", "last_used_at",
                    "requests_per_minute", "tokens_per_minute"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "key_hash", "created_by", "created_at", "last_used_at"]
    raw_id_fields = ["created_by"]

    def has_add_permission(self, request):
        return False


@admin.register(RequestTrace)
class RequestTraceAdmin(admin.ModelAdmin):
    """Written by the router in batches; read-only here."""

    list_display = ["created_at", "endpoint", "model", "status_code", "outcome", "instance_id", "latency_ms",
                    "ttft_ms", "held_ms", "prompt_tokens", "completion_tokens", "retries", "route_reason"]
    list_filter = ["outcome", "status_code", "stream", "endpoint"]
    search_fields = ["model", "=instance_id"]
    date_hierarchy = "created_at"
    list_select_related = ["api_key"]
    raw_id_fields = ["api_key"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
