"""The Mock cloud in the admin (README, "The Mock cloud"): faults armed, changed and disarmed; servers seen and
acted on (kill the agent, crash the engine, delete the server); providers' locks seen. Every write is audited."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from catalog.mock_cloud import AUDIT_AREA, fault_problems, operate_audited
from monitoring.audit import AuditedAdmin, Source, snapshot
from providers.mock import MockOperationError
from providers.mock_console import CRASH_ENGINE, DELETE_SERVER, KILL_AGENT, view_server
from providers.models import MockFault, MockServer, ProviderLock


class MockFaultForm(forms.ModelForm):
    class Meta:
        model = MockFault
        fields = ["kind", "zone", "commercial_type", "remaining", "permanent", "delay_s", "message"]
        help_texts = {
            "zone": "Only calls in this Mock zone; blank: every zone.",
            "commercial_type": "Only calls for this Mock type; blank: every type.",
            "remaining": "How many matching calls it affects; blank: every one until disarmed.",
            "permanent": "Create fails / power-on fails: whether retrying cannot help.",
            "delay_s": "Slow create: how much longer the create takes; server vanishes: how long after it runs.",
        }

    def clean(self):
        cleaned = super().clean()
        problems = fault_problems(zone=cleaned.get("zone") or "", commercial_type=cleaned.get("commercial_type") or "",
                                  remaining=cleaned.get("remaining"), delay_s=cleaned.get("delay_s") or 0)
        if problems:
            raise ValidationError(problems)
        return cleaned


@admin.register(MockFault)
class MockFaultAdmin(AuditedAdmin, admin.ModelAdmin):
    audit_area = AUDIT_AREA
    form = MockFaultForm
    list_display = ["id", "kind", "zone", "commercial_type", "remaining", "permanent", "delay_s", "created_at"]
    list_filter = ["kind"]


class ReadOnlyAdmin(AuditedAdmin, admin.ModelAdmin):
    """Rows the admin shows but never writes (their writes are the Mock's operations, or none)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _operation(operation: str, description: str):
    def run(modeladmin, request, queryset):
        done, refused = 0, []
        for server in queryset:
            try:
                operate_audited(server, operation, user=request.user, source=Source.ADMIN)
                done += 1
            except MockOperationError as exc:
                refused.append(str(exc))
        if done:
            modeladmin.message_user(request, f"{description}: {done} server(s).", messages.SUCCESS)
        for reason in refused:
            modeladmin.message_user(request, f"Not done: {reason}.", messages.WARNING)

    run.__name__ = operation
    run.short_description = description
    return run


@admin.register(MockServer)
class MockServerAdmin(ReadOnlyAdmin):
    audit_area = "MOCK_SERVER"
    list_display = ["id", "name", "zone", "commercial_type", "state", "agent", "created_at", "deleted_at"]
    list_filter = ["zone", "commercial_type"]
    search_fields = ["id", "name", "instance_id"]
    # The user data and the environment hold the machine's secrets: never shown.
    exclude = ["user_data", "runtime_env_encrypted"]
    actions = [_operation(KILL_AGENT, "Kill the worker agent (the machine stays up)"),
               _operation(CRASH_ENGINE, "Crash the engine (its agent restarts it)"),
               _operation(DELETE_SERVER, "Delete the server (as from the cloud's console)")]

    def audit_snapshot(self, obj):
        return snapshot(obj, exclude=["user_data"])

    @admin.display(description="state")
    def state(self, obj):
        return view_server(obj).state.value

    @admin.display(description="agent")
    def agent(self, obj):
        running = view_server(obj).agent_running
        return "—" if running is None else ("running" if running else "not running")


@admin.register(ProviderLock)
class ProviderLockAdmin(ReadOnlyAdmin):
    audit_area = "PROVIDER_LOCK"
    list_display = ["key", "value", "updated_at"]
    search_fields = ["key"]
