from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.utils.html import format_html
from django_tenants.admin import TenantAdminMixin
from django_tenants.utils import get_public_schema_name

from tenants.models import Domain, Tenant


def available_on_current_schema(model) -> bool:
    """Whether `model`'s table exists in the schema of this request: shared apps' models live in
    the public schema, tenant apps' models in each tenant's schema (apps in both, e.g. auth, in
    every schema)."""
    on_public = connection.schema_name == get_public_schema_name()
    apps = settings.SHARED_APPS if on_public else settings.TENANT_APPS
    return model._meta.app_config.name in apps


class SchemaScopedAdmin:
    """Mixin for every ModelAdmin and inline: shown and usable only where its table exists, so
    the platform's data never appears in a tenant's admin, nor tenant data in the public one."""

    def has_module_permission(self, request):
        return available_on_current_schema(self.model) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return available_on_current_schema(self.model) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return available_on_current_schema(self.model) and super().has_add_permission(
            request, *args
        )

    def has_change_permission(self, request, obj=None):
        return available_on_current_schema(self.model) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return available_on_current_schema(self.model) and super().has_delete_permission(
            request, obj
        )


class DomainInline(SchemaScopedAdmin, admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(SchemaScopedAdmin, TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "schema_name",
        "primary_domain",
        "request_limit",
        "request_period",
        "expires_at",
        "licence_status",
    )
    list_filter = ("request_period",)
    search_fields = ("name", "schema_name", "domains__domain")
    readonly_fields = ("created_at",)
    inlines = [DomainInline]
    fieldsets = (
        (None, {"fields": ("name", "schema_name", "created_at")}),
        ("Platform licence", {"fields": ("request_limit", "request_period", "expires_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # The schema name is the tenant's identity; it cannot change once the schema exists.
        return self.readonly_fields + (("schema_name",) if obj else ())

    @admin.display(description="Domain")
    def primary_domain(self, obj):
        domain = obj.get_primary_domain()
        return domain.domain if domain else "—"

    @admin.display(description="Licence")
    def licence_status(self, obj):
        if obj.is_expired:
            return format_html('<strong style="color:#ba2121">{}</strong>', "expired")
        return "valid"


@admin.register(Domain)
class DomainAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain", "tenant__name", "tenant__schema_name")
    list_select_related = ("tenant",)


# The task queue's jobs (procrastinate's own admin) live in the public schema and name every
# tenant's schema: the platform's admin shows them, a tenant's admin never does.
from procrastinate.contrib.django import admin as queue_admin  # noqa: E402 (registers it first)
from procrastinate.contrib.django.models import ProcrastinateJob  # noqa: E402


class QueueJobAdmin(SchemaScopedAdmin, queue_admin.ProcrastinateJobAdmin):
    pass


admin.site.unregister(ProcrastinateJob)
admin.site.register(ProcrastinateJob, QueueJobAdmin)
