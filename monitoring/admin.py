from django.contrib import admin

from monitoring.models import ActionLog, ActionType


@admin.register(ActionType)
class ActionTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "label", "category", "color", "icon", "active"]
    list_filter = ["category", "color", "active"]
    search_fields = ["code", "label"]


@admin.register(ActionLog)
class ActionLogAdmin(admin.ModelAdmin):
    """The audit trail, read-only: rows are written by the services, never edited by hand."""

    list_display = ["created_at", "action_type", "component", "status", "instance_id", "duration_ms", "error_code"]
    list_filter = ["status", "component", "action_type"]
    search_fields = ["=instance_id", "action_type", "error_code"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    raw_id_fields = ["parent", "user"]
    # The log grows to millions of rows: no exact COUNT(*) of the whole table on every page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
