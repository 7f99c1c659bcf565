import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from django_tenants.admin import TenantAdminMixin
from django_tenants.utils import get_public_schema_name

from tenants import services
from tenants.models import Domain, SigningKey, Tenant
from tenants.signing_keys import jwk


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


def is_public(tenant) -> bool:
    return tenant is not None and services.is_public_tenant(tenant)


class DomainForm(forms.ModelForm):
    """A domain as tenant resolution matches hosts: lower case, no `www.` prefix."""

    class Meta:
        model = Domain
        fields = ("domain", "tenant", "is_primary")

    def clean_domain(self):
        domain = self.cleaned_data["domain"].strip().lower()
        try:
            services.check_resolvable_domain(domain)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        return domain


class DomainInline(SchemaScopedAdmin, admin.TabularInline):
    """A tenant's domains; those of the public tenant are shown, never changed."""

    model = Domain
    form = DomainForm
    extra = 0

    def has_add_permission(self, request, obj=None):
        return not is_public(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not is_public(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not is_public(obj) and super().has_delete_permission(request, obj)


def _form_errors(form: forms.Form, error: ValidationError, field: str | None = None) -> None:
    for message in error.messages:
        form.add_error(field, message)


class TenantForm(forms.ModelForm):
    """The change form: name and platform licence, checked by the services' rules."""

    class Meta:
        model = Tenant
        fields = ["name", "request_limit", "request_period", "expires_at"]

    def clean(self):
        data = super().clean()
        if data.get("request_limit") is not None and data.get("request_period"):
            try:
                services.validate_licence(data["request_limit"], data["request_period"])
            except ValidationError as error:
                _form_errors(self, error, "request_limit")
        return data


class TenantAddForm(TenantForm):
    """Provisioning, as `manage.py provision_tenant` does it: the schema (cloned from the
    template), the domain, the first tenant administrator and the platform licence."""

    domain = forms.CharField(
        max_length=253, help_text="The host the tenant is served on, e.g. acme.example.com."
    )
    admin_username = forms.CharField(
        max_length=150, label="Administrator username", help_text="The tenant's first superuser."
    )
    admin_email = forms.EmailField(label="Administrator email")
    admin_password = forms.CharField(
        label="Administrator password", strip=False, widget=forms.PasswordInput
    )
    admin_password_again = forms.CharField(
        label="Password (again)", strip=False, widget=forms.PasswordInput
    )

    class Meta(TenantForm.Meta):
        fields = ["name", "schema_name", "request_limit", "request_period", "expires_at"]
        help_texts = {
            "schema_name": "The tenant's identity: lowercase letters, digits and underscores, "
            "starting with a letter. It cannot change later."
        }

    def admin_account(self) -> services.AdminAccount:
        data = self.cleaned_data
        return services.AdminAccount(
            username=data["admin_username"].strip(),
            email=data["admin_email"],
            password=data["admin_password"],
        )

    def clean(self):
        data = super().clean()
        if data.get("schema_name") and data.get("domain"):
            try:
                services.validate_new_tenant(
                    data["schema_name"].strip(), data["domain"].strip().lower()
                )
            except ValidationError as error:
                _form_errors(self, error)
        if data.get("admin_password") != data.get("admin_password_again"):
            self.add_error("admin_password_again", "The passwords do not match.")
        elif all(data.get(f) for f in ("admin_username", "admin_email", "admin_password")):
            try:
                services.validate_admin(self.admin_account())
            except ValidationError as error:
                _form_errors(self, error, "admin_password")
        return data


class TenantDeleteForm(forms.Form):
    confirmation = forms.CharField(label="Schema name", max_length=63)

    def __init__(self, tenant, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_confirmation(self):
        value = self.cleaned_data["confirmation"].strip()
        if value != self.tenant.schema_name:
            raise ValidationError(
                f"Type the schema name “{self.tenant.schema_name}” exactly to delete this tenant."
            )
        return value


@admin.register(Tenant)
class TenantAdmin(SchemaScopedAdmin, TenantAdminMixin, admin.ModelAdmin):
    form = TenantForm
    add_form = TenantAddForm
    delete_confirmation_template = "admin/tenants/tenant/delete_confirmation.html"
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
    fieldsets = (
        (None, {"fields": ("name", "schema_name", "created_at")}),
        ("Platform licence", {"fields": ("request_limit", "request_period", "expires_at")}),
    )
    add_fieldsets = (
        (None, {"fields": ("name", "schema_name", "domain")}),
        (
            "First administrator",
            {
                "fields": (
                    "admin_username",
                    "admin_email",
                    "admin_password",
                    "admin_password_again",
                ),
                "description": "A superuser of the new tenant, who signs in to its own admin.",
            },
        ),
        ("Platform licence", {"fields": ("request_limit", "request_period", "expires_at")}),
    )

    class Media:
        css = {"all": ["tenants/admin.css"]}

    def get_actions(self, request):
        # Deleting tenants drops their schemas: one at a time, confirmed by name (delete_view).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return not is_public(obj) and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        # The schema name is the tenant's identity; the public tenant keeps its name too.
        return self.readonly_fields + ("schema_name",) + (("name",) if is_public(obj) else ())

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj):
        return [DomainInline] if obj is not None else []

    @method_decorator(sensitive_post_parameters("admin_password", "admin_password_again"))
    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            tenant = services.provision_tenant(
                schema_name=data["schema_name"],
                name=data["name"],
                domain=data["domain"],
                admin=form.admin_account(),
                request_limit=data["request_limit"],
                request_period=data["request_period"],
                expires_at=data["expires_at"],
            )
            obj.pk, obj.created_at = tenant.pk, tenant.created_at
            obj._state.adding = False
            return
        stored = Tenant.objects.get(pk=obj.pk)
        if "name" in form.changed_data:
            services.rename_tenant(stored, data["name"])
        services.set_tenant_licence(
            stored,
            request_limit=data["request_limit"],
            request_period=data["request_period"],
            expires_at=data["expires_at"],
        )

    def save_formset(self, request, form, formset, change):
        for domain in formset.save(commit=False):
            services.save_domain(domain)
        for domain in formset.deleted_objects:
            services.delete_domain(domain)

    def delete_view(self, request, object_id, extra_context=None):
        """Lists what goes with the tenant and asks for its schema name before dropping it."""
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, tenant):
            raise PermissionDenied
        form = TenantDeleteForm(tenant, request.POST if request.method == "POST" else None)
        if form.is_valid():
            self.log_deletions(request, Tenant.objects.filter(pk=tenant.pk))
            services.delete_tenant(tenant, confirmation=form.cleaned_data["confirmation"])
            self.message_user(
                request, f"Deleted the tenant “{tenant}” and its schema.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:tenants_tenant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete this tenant?",
            "subtitle": str(tenant),
            "opts": self.opts,
            "object": tenant,
            "domains": list(tenant.domains.values_list("domain", flat=True)),
            "contents": services.tenant_contents(tenant),
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.delete_confirmation_template, context)

    @admin.display(description="Domain")
    def primary_domain(self, obj):
        domain = obj.get_primary_domain()
        return domain.domain if domain else "—"

    @admin.display(description="Licence")
    def licence_status(self, obj):
        if obj.is_expired:
            return format_html('<strong class="status-expired">{}</strong>', "expired")
        return "valid"


@admin.register(Domain)
class DomainAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    form = DomainForm
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain", "tenant__name", "tenant__schema_name")
    list_select_related = ("tenant",)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_change_permission(self, request, obj=None):
        return not is_public(getattr(obj, "tenant", None)) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return not is_public(getattr(obj, "tenant", None)) and super().has_delete_permission(
            request, obj
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            kwargs["queryset"] = Tenant.objects.exclude(schema_name=get_public_schema_name())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        services.save_domain(obj)

    def delete_model(self, request, obj):
        services.delete_domain(obj)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """The signing keys' public halves, read-only, to copy into a client application: on a
    tenant's admin its own keys, on the platform's admin every tenant's. Rotation is a command
    (`rotate_signing_key`); private keys never leave the server."""

    list_display = ("kid", "status_display", "public_key_x", "created_at", "retires_at")
    readonly_fields = ("kid", "status_display", "jwk_display", "created_at", "retires_at")
    fields = readonly_fields

    def get_queryset(self, request):
        keys = super().get_queryset(request).select_related("tenant")
        if connection.schema_name == get_public_schema_name():
            return keys
        return keys.filter(tenant_id=request.tenant.pk)

    def get_list_display(self, request):
        on_public = connection.schema_name == get_public_schema_name()
        return ("tenant", *self.list_display) if on_public else self.list_display

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    class Media:
        css = {"all": ["tenants/admin.css"]}

    @admin.display(description="Status")
    def status_display(self, obj):
        return obj.status.label

    @admin.display(description="Public key (x)")
    def public_key_x(self, obj):
        return format_html('<code class="copyable">{}</code>', jwk(obj)["x"])

    @admin.display(description="JWK")
    def jwk_display(self, obj):
        text = json.dumps(jwk(obj), indent=2)
        return format_html('<pre class="copyable">{}</pre>', text)


# The task queue's jobs (procrastinate's own admin) live in the public schema and name every
# tenant's schema: the platform's admin shows them, a tenant's admin never does.
from procrastinate.contrib.django import admin as queue_admin  # noqa: E402 (registers it first)
from procrastinate.contrib.django.models import ProcrastinateJob  # noqa: E402


class QueueJobAdmin(SchemaScopedAdmin, queue_admin.ProcrastinateJobAdmin):
    pass


admin.site.unregister(ProcrastinateJob)
admin.site.register(ProcrastinateJob, QueueJobAdmin)
