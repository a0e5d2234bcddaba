from django.contrib import admin

from finops.models import Budget, BudgetAlert, CostCursor, CostMinute
from monitoring.audit import AuditedAdmin


@admin.register(CostMinute)
class CostMinuteAdmin(admin.ModelAdmin):
    """The cost series, read-only: rows are written by the cost task, never by hand."""

    list_display = ["minute", "instance_id", "provider", "model", "pool_id", "amount"]
    list_filter = ["provider", "model"]
    search_fields = ["=instance_id", "=pool_id"]
    date_hierarchy = "minute"
    # One row per instance and minute: no exact COUNT(*) of the whole table on every page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CostCursor)
class CostCursorAdmin(admin.ModelAdmin):
    list_display = ["name", "computed_until", "updated_at"]


@admin.register(Budget)
class BudgetAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = "BUDGET"
    list_display = ["id", "pool_id", "api_key", "amount", "spent", "spent_month", "spent_at"]
    readonly_fields = ["spent", "spent_month", "spent_at"]
    raw_id_fields = ["api_key"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "budget", "month", "threshold", "spent"]
    list_filter = ["threshold", "month"]
