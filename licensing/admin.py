"""The tenant administrator's pages for the licensing domain. New licences are issued through the
same service as the API, so the admin cannot create a key the API would not."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from licensing import offline, services
from licensing.models import (
    Customer,
    Group,
    License,
    LicenseStatus,
    LicenseValidation,
    Plan,
    Product,
)
from tenants.admin import SchemaScopedAdmin

TIMESTAMPS = ("created_at", "updated_at")


@admin.register(Group)
class GroupAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "max_licenses_per_member", "member_count", "updated_at")
    search_fields = ("name", "description", "members__username", "members__email")
    filter_horizontal = ("members",)
    readonly_fields = TIMESTAMPS
    fieldsets = (
        (None, {"fields": ("name", "description")}),
        ("Settings", {"fields": ("max_licenses_per_member",)}),
        ("Members", {"fields": ("members",)}),
        ("History", {"fields": TIMESTAMPS}),
    )

    @admin.display(description="Members")
    def member_count(self, obj):
        return obj.members.count()


class EntitlementsField(forms.CharField):
    """Feature codes typed as a comma-separated list, stored as a JSON list."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Feature codes, separated by commas.")
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 40}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value):
        text = super().to_python(value) or ""
        codes = [code.strip() for code in text.replace("\n", ",").split(",") if code.strip()]
        try:
            return services.clean_entitlements(codes)
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["entitlements"]) from None


class PlanForm(forms.ModelForm):
    entitlements = EntitlementsField()

    class Meta:
        model = Plan
        fields = ("product", "code", "name", "duration_days", "max_activations", "entitlements")


class PlanInline(SchemaScopedAdmin, admin.TabularInline):
    model = Plan
    form = PlanForm
    extra = 0
    fields = ("code", "name", "duration_days", "max_activations", "entitlements")
    show_change_link = True


@admin.register(Product)
class ProductAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "code", "active", "plan_count", "created_at")
    list_filter = ("active",)
    search_fields = ("code", "name", "description")
    readonly_fields = TIMESTAMPS
    inlines = [PlanInline]

    @admin.display(description="Plans")
    def plan_count(self, obj):
        return obj.plans.count()


@admin.register(Plan)
class PlanAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    form = PlanForm
    list_display = ("name", "code", "product", "duration", "max_activations", "created_at")
    list_filter = ("product",)
    search_fields = ("code", "name", "product__code", "product__name")
    list_select_related = ("product",)
    readonly_fields = TIMESTAMPS

    @admin.display(description="Duration")
    def duration(self, obj):
        return "perpetual" if obj.duration_days is None else f"{obj.duration_days} days"


class CustomerLicenseInline(SchemaScopedAdmin, admin.TabularInline):
    model = License
    extra = 0
    fields = ("key", "product", "plan", "status", "expires_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    list_display = ("name", "email", "external_id", "created_at")
    search_fields = ("name", "email", "external_id", "notes")
    readonly_fields = TIMESTAMPS
    inlines = [CustomerLicenseInline]


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return (("current", "Not expired"), ("expired", "Expired"), ("perpetual", "Perpetual"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "current":
            return queryset.exclude(expires_at__lte=now)
        if self.value() == "perpetual":
            return queryset.filter(expires_at__isnull=True)
        return queryset


class LicenseAdminForm(forms.ModelForm):
    """Checks the service's rules while the form can still show the error beside the field."""

    class Meta:
        model = License
        fields = (
            "product",
            "plan",
            "status",
            "customer",
            "user",
            "starts_at",
            "expires_at",
            "metadata",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and "expires_at" in self.fields:
            self.fields["expires_at"].help_text = "Empty: the plan's duration from the start."

    def expiry(self):
        # An empty expiry on a new licence means "the plan's duration".
        if self.instance.pk is None and not self.cleaned_data.get("expires_at"):
            return services.UNSET
        return self.cleaned_data.get("expires_at")

    def clean(self):
        data = super().clean()
        stored = self.instance if self.instance.pk else None
        product = data.get("product") or getattr(stored, "product", None)
        plan = data.get("plan") or getattr(stored, "plan", None)
        if self.errors or product is None or plan is None:
            return data
        starts_at = data.get("starts_at") or timezone.now()
        expires_at = self.expiry()
        if expires_at is services.UNSET:
            expires_at = None
        try:
            services.check_license_terms(
                product=product,
                plan=plan,
                user=data.get("user"),
                status=data.get("status") or LicenseStatus.ACTIVE,
                starts_at=starts_at,
                expires_at=expires_at,
                license=stored,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return data


@admin.register(License)
class LicenseAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    form = LicenseAdminForm
    list_display = (
        "key_display",
        "product",
        "plan",
        "customer",
        "user",
        "status_badge",
        "expires_at",
    )
    list_filter = ("status", ExpiryFilter, "product", "plan")
    search_fields = ("key", "customer__name", "customer__email", "user__username", "user__email")
    list_select_related = ("product", "plan", "customer", "user")
    autocomplete_fields = ("customer", "user")
    readonly_fields = ("key", "expired", *TIMESTAMPS)
    date_hierarchy = "created_at"
    actions = ("suspend", "reactivate", "revoke", "download_license_file")
    fieldsets = (
        (None, {"fields": ("key", "product", "plan", "status")}),
        ("Holder", {"fields": ("customer", "user")}),
        (
            "Validity",
            {
                "fields": ("starts_at", "expires_at", "expired"),
                "description": "Leave the expiry empty on a new licence to take the plan's duration.",
            },
        ),
        ("Metadata", {"fields": ("metadata",)}),
        ("History", {"fields": TIMESTAMPS}),
    )

    def get_readonly_fields(self, request, obj=None):
        # A licence's product and plan are fixed once issued.
        return self.readonly_fields + (("product", "plan") if obj else ())

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.fieldsets
        # A new licence has no key, expiry state or history yet: the service makes them.
        hidden = {"key", "expired", *TIMESTAMPS}
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in self.fieldsets
            if any(f not in hidden for f in options["fields"])
        ]

    @admin.display(description="Key", ordering="key")
    def key_display(self, obj):
        return format_html('<code style="white-space:nowrap">{}</code>', obj.key)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        colour = {"active": "#2e7d32", "suspended": "#b26a00", "revoked": "#ba2121"}[obj.status]
        label = obj.get_status_display()
        if obj.status == LicenseStatus.ACTIVE and obj.is_expired:
            colour, label = "#777", "Expired"
        return format_html('<strong style="color:{}">{}</strong>', colour, label)

    @admin.display(description="Expired", boolean=True)
    def expired(self, obj):
        return obj.is_expired if obj.pk else None

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changed = {
                name: data[name]
                for name in form.changed_data
                if name in services.LICENSE_CHANGEABLE
            }
            saved = services.update_license(obj, **changed)
        else:
            saved = services.issue_license(
                product=data["product"],
                plan=data["plan"],
                customer=data.get("customer"),
                user=data.get("user"),
                starts_at=data.get("starts_at"),
                expires_at=form.expiry(),
                metadata=data.get("metadata") or {},
                status=data.get("status") or LicenseStatus.ACTIVE,
            )
        obj.pk, obj.key = saved.pk, saved.key

    def _set_status(self, request, queryset, status):
        done, refused = 0, 0
        for license in queryset:
            try:
                services.update_license(license, status=status)
                done += 1
            except ValidationError:
                refused += 1
        self.message_user(request, f"{done} licence(s) now {status}.")
        if refused:
            self.message_user(
                request, f"{refused} licence(s) refused the change.", messages.WARNING
            )

    @admin.action(description="Suspend selected licences")
    def suspend(self, request, queryset):
        self._set_status(request, queryset, LicenseStatus.SUSPENDED)

    @admin.action(description="Reactivate selected licences")
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, LicenseStatus.ACTIVE)

    @admin.action(description="Revoke selected licences (final)")
    def revoke(self, request, queryset):
        self._set_status(request, queryset, LicenseStatus.REVOKED)

    @admin.action(description="Download licence file (offline use, 7 days)")
    def download_license_file(self, request, queryset):
        licenses = list(queryset[:2])
        if len(licenses) != 1:
            self.message_user(request, "Select exactly one licence.", messages.WARNING)
            return None
        checkout = offline.check_out_license(licenses[0].key, tenant=request.tenant)
        if not checkout.valid:
            self.message_user(request, f"No licence file: {checkout.code.label}", messages.WARNING)
            return None
        response = HttpResponse(checkout.license_file, content_type="text/plain; charset=utf-8")
        name = f"license-{licenses[0].key[:5]}.lic"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(LicenseValidation)
class LicenseValidationAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    """A read-only log of validation calls."""

    list_display = ("created_at", "code", "license", "client_address")
    list_filter = ("code",)
    search_fields = ("license__key", "client_address")
    list_select_related = ("license",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
