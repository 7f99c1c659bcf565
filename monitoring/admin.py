"""Monitoring in the tenant's admin: the security dashboard, security events and alerts.

Tenant schemas only: on the public domain these pages are hidden and refused (tokens/admin.py is
the User Token admin).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone

from monitoring import dashboard
from monitoring.models import Alert, SecurityDashboard, SecurityEvent
from tenants.admin import SchemaScopedAdmin, available_on_current_schema


class TenantOnlyAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    """Read-only, and only in a tenant's admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # kept for the retention period, then pruned (manage.py prune_security_events)


@admin.register(SecurityEvent)
class SecurityEventAdmin(TenantOnlyAdmin):
    # Fits a 1366 px screen: the token, method and path are on each event's page.
    list_display = [
        "created_at",
        "kind",
        "reason_display",
        "address",
        "token_hint",
        "actor",
        "via",
        "count",
    ]
    # No filter over free-text columns: their distinct values would be scanned on a big table.
    list_filter = ["kind", "via", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["address", "reason", "token_hint", "path", "user_agent"]
    date_hierarchy = "created_at"
    list_select_related = ["user_token", "actor"]
    show_full_result_count = False
    fields = [
        "created_at",
        "kind",
        "reason",
        "address",
        "user_agent",
        "user_token",
        "token_hint",
        "actor",
        "via",
        "method",
        "path",
        "count",
        "details",
    ]
    readonly_fields = fields

    @admin.display(description="Reason", ordering="reason")
    def reason_display(self, obj):
        return dashboard.reason_label(obj.reason)


def acknowledge(alerts, user) -> int:
    return alerts.filter(status=Alert.Status.OPEN).update(
        status=Alert.Status.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
    )


@admin.register(Alert)
class AlertAdmin(TenantOnlyAdmin):
    list_display = ["created_at", "status", "kind", "message", "acknowledged_by", "acknowledged_at"]
    list_filter = ["status", "kind"]
    search_fields = ["message", "address"]
    list_select_related = ["acknowledged_by"]
    actions = ["acknowledge_alerts"]
    fields = [
        "created_at",
        "status",
        "kind",
        "message",
        "address",
        "user_token",
        "count",
        "window_seconds",
        "acknowledged_at",
        "acknowledged_by",
    ]
    readonly_fields = fields

    def has_change_permission(self, request, obj=None):
        # Acknowledging is the only change, through the action (all fields stay read-only).
        return available_on_current_schema(self.model) and request.user.has_perm(
            "monitoring.change_alert"
        )

    @admin.action(description="Acknowledge selected alerts", permissions=["change"])
    def acknowledge_alerts(self, request, queryset):
        count = acknowledge(queryset, request.user)
        self.message_user(request, f"{count} alert(s) acknowledged.", messages.SUCCESS)


@admin.register(SecurityDashboard)
class SecurityDashboardAdmin(TenantOnlyAdmin):
    """The admin index lists it as "Security dashboard"; its list page is the dashboard."""

    def has_view_permission(self, request, obj=None):
        return (
            available_on_current_schema(self.model)
            and request.user.is_active
            and request.user.is_staff
            and (
                request.user.has_perm("monitoring.view_securityevent")
                or request.user.has_perm("monitoring.view_securitydashboard")
            )
        )

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._acknowledge(request)
        context = {
            **self.admin_site.each_context(request),
            **dashboard.context(),
            "title": "Security dashboard",
            "opts": self.model._meta,
            "can_acknowledge": request.user.has_perm("monitoring.change_alert"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/monitoring/dashboard.html", context)

    def _acknowledge(self, request):
        if not request.user.has_perm("monitoring.change_alert"):
            raise PermissionDenied
        ids = [value for value in request.POST.getlist("alert") if value.isdigit()]
        count = acknowledge(Alert.objects.filter(pk__in=ids), request.user)
        self.message_user(request, f"{count} alert(s) acknowledged.", messages.SUCCESS)
        return redirect(request.path)
