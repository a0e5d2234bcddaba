"""Instances in the admin: read-only (status changes go through the services), with terminate/archive actions."""

from django.contrib import admin, messages

from instances import termination
from instances.lifecycle import InvalidTransition
from instances.models import Instance, JoinToken

SECRETS = ("worker_token_hash", "engine_api_key_encrypted")


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "provider", "zone", "instance_type", "model", "public_ip", "created_at", "error_code"]
    list_filter = ["status", "provider", "zone", "error_code"]
    search_fields = ["=id", "provider_server_id", "public_ip", "error_code"]
    list_select_related = ["provider", "zone", "instance_type", "model"]
    date_hierarchy = "created_at"
    exclude = SECRETS
    actions = ["terminate", "archive"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Instance._meta.fields if field.name not in SECRETS]

    def has_add_permission(self, request):
        return False  # machines are requested through the API or the Instances page, which validate them

    @admin.action(description="Terminate selected instances")
    def terminate(self, request, queryset):
        for instance in queryset:
            termination.terminate_instance(instance, reason="operator request from the admin", actor=request.user)
        self.message_user(request, f"Termination requested for {queryset.count()} instance(s).")

    @admin.action(description="Archive selected instances (terminated ones only)")
    def archive(self, request, queryset):
        archived = 0
        for instance in queryset:
            try:
                termination.archive_instance(instance, actor=request.user)
                archived += 1
            except InvalidTransition as exc:
                self.message_user(request, f"{instance.pk} is {exc.before}: terminate it first.", messages.WARNING)
        self.message_user(request, f"{archived} instance(s) archived.")


@admin.register(JoinToken)
class JoinTokenAdmin(admin.ModelAdmin):
    """Join tokens of hosts you run yourself: when each expires and whether it was spent. The token itself is
    never stored (only its hash, not shown); hosts are registered on the Instances page or at /api/hosts/,
    which show the token once."""

    list_display = ["instance", "created_at", "expires_at", "used_at"]
    readonly_fields = ["instance", "created_at", "expires_at", "used_at"]
    exclude = ["token_hash"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
