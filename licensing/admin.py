"""The tenant administrator's pages for the licensing domain. Every save goes through
licensing.services, like the API's: the admin cannot write what the API would refuse (a licence
key of its own making, a plan moved to another product, a group past its rules)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from licensing import clock, offline, services
from licensing.models import (
    Customer,
    Group,
    License,
    LicenseStatus,
    LicenseValidation,
    Machine,
    MachineStatus,
    Plan,
    Product,
)
from tenants.admin import SchemaScopedAdmin

TIMESTAMPS = ("created_at", "updated_at")


def changes(form) -> dict:
    """The fields the administrator changed, as the form cleaned them."""
    return {
        name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data
    }


class ServiceSavedAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    """Saves through licensing.services: the function named `create_service` is called with the
    form's fields for a new object, `update_service` with the row as stored (so a rule comparing
    old and new values sees the old ones) and the changed fields."""

    create_service: str
    update_service: str

    def save_model(self, request, obj, form, change):
        if change:
            stored = type(obj).objects.get(pk=obj.pk)
            saved = getattr(services, self.update_service)(stored, **changes(form))
        else:
            fields = {name: form.cleaned_data[name] for name in form.fields}
            saved = getattr(services, self.create_service)(**fields)
        obj.pk, obj._state.adding = saved.pk, False
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Many-to-many fields were saved by the service; only inline formsets are left.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


# Admin labels say "licence" (British prose) where the field's name, kept for code and the API,
# says "license"; the models' own verbose names are left as they are (no migration).
BRITISH_LABELS = {"max_licenses_per_member": "Max licences per member", "license": "Licence"}


def licence_link(license):
    if license is None:
        return "—"
    url = reverse("admin:licensing_license_change", args=[license.pk])
    return format_html('<a href="{}"><code class="license-key">{}</code></a>', url, license.key)


class BritishLabels:
    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in BRITISH_LABELS:
            field.label = BRITISH_LABELS[db_field.name]
        return field


@admin.register(Group)
class GroupAdmin(BritishLabels, ServiceSavedAdmin):
    list_display = ("name", "max_licences", "member_count", "updated_at")
    search_fields = ("name", "description", "members__username", "members__email")
    filter_horizontal = ("members",)
    readonly_fields = TIMESTAMPS
    fieldsets = (
        (None, {"fields": ("name", "description")}),
        ("Settings", {"fields": ("max_licenses_per_member",)}),
        ("Members", {"fields": ("members",)}),
        ("History", {"fields": TIMESTAMPS}),
    )

    create_service = "create_group"
    update_service = "update_group"

    @admin.display(description="Max licences per member", ordering="max_licenses_per_member")
    def max_licences(self, obj):
        return obj.max_licenses_per_member

    @admin.display(description="Members")
    def member_count(self, obj):
        return obj.members.count()

    def delete_model(self, request, obj):
        services.delete_group(obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            services.delete_group(group)


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
        fields = (
            "product",
            "code",
            "name",
            "duration_days",
            "max_activations",
            *services.PLAN_MACHINE_RULES,
            "entitlements",
        )


PLAN_FIELDS = ("code", "name", "duration_days", "max_activations", "entitlements")


class PlanInline(SchemaScopedAdmin, admin.TabularInline):
    model = Plan
    form = PlanForm
    extra = 0
    fields = PLAN_FIELDS
    show_change_link = True


@admin.register(Product)
class ProductAdmin(ServiceSavedAdmin):
    list_display = ("name", "code", "active", "plan_count", "created_at")
    list_filter = ("active",)
    search_fields = ("code", "name", "description")
    readonly_fields = TIMESTAMPS
    inlines = [PlanInline]
    create_service = "create_product"
    update_service = "update_product"

    @admin.display(description="Plans")
    def plan_count(self, obj):
        return obj.plans.count()

    def save_formset(self, request, form, formset, change):
        """The product's plans, through the same services as the plan pages and the API."""
        formset.save(commit=False)  # sorts its forms into new, changed and deleted plans
        for plan in formset.new_objects:
            fields = {name: getattr(plan, name) for name in PLAN_FIELDS}
            plan.pk = services.create_plan(product=form.instance, **fields).pk
        for plan, changed in formset.changed_objects:
            stored = Plan.objects.get(pk=plan.pk)
            services.update_plan(stored, **{name: getattr(plan, name) for name in changed})
        for plan in formset.deleted_objects:
            plan.delete()


@admin.register(Plan)
class PlanAdmin(ServiceSavedAdmin):
    form = PlanForm
    list_display = ("name", "code", "product", "duration", "max_activations", "created_at")
    list_filter = ("product",)
    search_fields = ("code", "name", "product__code", "product__name")
    list_select_related = ("product",)
    readonly_fields = TIMESTAMPS
    create_service = "create_plan"
    update_service = "update_plan"

    def get_readonly_fields(self, request, obj=None):
        # Licences issued under a plan refer to its product too: it is fixed once the plan exists.
        return self.readonly_fields + (("product",) if obj else ())

    fieldsets = (
        (None, {"fields": ("product", "code", "name", "duration_days", "entitlements")}),
        (
            "Machines",
            {
                "fields": ("max_activations", *services.PLAN_MACHINE_RULES),
                "description": "Activation slots, the churn budget (client deactivations per "
                "30 days) and heartbeats: a machine that misses its heartbeat by the grace "
                "period is dead and frees its slot.",
            },
        ),
        ("History", {"fields": TIMESTAMPS}),
    )

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
class CustomerAdmin(ServiceSavedAdmin):
    list_display = ("name", "email", "external_id", "created_at")
    search_fields = ("name", "email", "external_id", "notes")
    readonly_fields = TIMESTAMPS
    inlines = [CustomerLicenseInline]
    create_service = "create_customer"
    update_service = "update_customer"


MACHINE_FIELDS = (
    "fingerprint",
    "name",
    "hostname",
    "platform",
    "machine_status",
    "activated_at",
    "last_heartbeat_at",
    "deactivated_at",
)


def machine_status_badge(machine: Machine):
    status = machine.status
    return format_html(
        '<strong class="machine-status machine-status-{}">{}</strong>', status, status.label
    )


def deactivate_url(machine: Machine) -> str:
    return reverse("admin:licensing_machine_deactivate", args=[machine.pk])


class MachineInline(SchemaScopedAdmin, admin.TabularInline):
    """A licence's machines, read-only; Deactivate goes through licensing.services."""

    model = Machine
    extra = 0
    fields = (*MACHINE_FIELDS, "deactivate")
    readonly_fields = fields
    ordering = ("deactivated_at", "-id")
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Status")
    def machine_status(self, obj):
        return machine_status_badge(obj)

    @admin.display(description="")
    def deactivate(self, obj):
        if obj.pk is None or obj.deactivated_at is not None:
            return ""
        # The licence page is one form already: the button posts it to the deactivate view
        # (formaction), carrying its CSRF token and nothing the view reads.
        return format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post" '
            'formnovalidate name="_deactivate_machine">Deactivate</button>',
            deactivate_url(obj),
        )


class MachineStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return MachineStatus.choices

    def queryset(self, request, queryset):
        now = clock.now()
        if self.value() == MachineStatus.ACTIVE:
            return queryset.filter(services.alive(now))
        if self.value() == MachineStatus.DEAD:
            return queryset.filter(deactivated_at__isnull=True, dies_at__lte=now)
        if self.value() == MachineStatus.DEACTIVATED:
            return queryset.filter(deactivated_at__isnull=False)
        return queryset


@admin.register(Machine)
class MachineAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    """Machines are made by activations; here they are looked at and deactivated."""

    list_display = ("fingerprint", "licence", "name", "hostname", "platform", "machine_status",
                    "activated_at", "last_heartbeat_at")  # fmt: skip
    list_filter = (MachineStatusFilter, "platform")
    search_fields = ("fingerprint", "hostname")
    list_select_related = ("license",)
    readonly_fields = (
        "licence",
        *MACHINE_FIELDS,
        "metadata",
        "dies_at",
        "dead_at",
        "deactivation_reason",
    )
    fields = readonly_fields
    actions = ("deactivate_selected",)
    date_hierarchy = "activated_at"

    class Media:
        css = {"all": ["licensing/admin.css"]}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the history of a licence's machines stays

    @admin.display(description="Status")
    def machine_status(self, obj):
        return machine_status_badge(obj)

    @admin.display(description="Licence", ordering="license__key")
    def licence(self, obj):
        return licence_link(obj.license)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/deactivate/",
                self.admin_site.admin_view(self.deactivate_view),
                name="licensing_machine_deactivate",
            ),
            *super().get_urls(),
        ]

    def deactivate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        machine = self.get_object(request, unquote(object_id))
        if machine is None:
            raise Http404("No such machine.")
        if services.deactivate_machine(machine):
            self.log_change(request, machine, "Deactivated.")
        self.message_user(request, f"“{machine}” is deactivated: its slot is free.")
        return HttpResponseRedirect(
            reverse("admin:licensing_license_change", args=[machine.license_id])
        )

    @admin.action(description="Deactivate selected machines", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        count = 0
        for machine in queryset.filter(deactivated_at__isnull=True):
            if services.deactivate_machine(machine):
                self.log_change(request, machine, "Deactivated.")
                count += 1
        self.message_user(request, f"Deactivated {count} machine{'s' if count != 1 else ''}.")


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
        "product_code",
        "plan_code",
        "holder",
        "status_badge",
        "activations",
        "expiry_date",
    )
    list_filter = ("status", ExpiryFilter, "product", "plan")
    # A query shaped like a key (any case, with or without dashes) is matched exactly against the
    # stored key (get_search_results): one unique-index lookup, never a substring scan of keys.
    search_fields = ("customer__name", "customer__email", "user__username", "user__email")
    search_help_text = (
        "A licence key (dashes and case optional), or a customer's or user's name or email."
    )
    list_select_related = ("product", "plan", "customer", "user")
    autocomplete_fields = ("customer", "user")
    readonly_fields = ("key", "expired", *TIMESTAMPS)
    date_hierarchy = "created_at"
    actions = ("suspend", "reactivate", "revoke", "download_license_file")
    inlines = [MachineInline]

    class Media:
        css = {"all": ["licensing/admin.css"]}

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

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                activations_used=Count("machines", filter=services.alive(clock.now(), "machines__"))
            )
        )

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    @admin.display(description="Activations", ordering="activations_used")
    def activations(self, obj):
        limit = obj.plan.max_activations
        return f"{obj.activations_used} / {'∞' if limit is None else limit}"

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

    def get_search_results(self, request, queryset, search_term):
        key = services.normalise_license_key(search_term.strip())
        if key is not None:
            return queryset.filter(key=key), False
        return super().get_search_results(request, queryset, search_term)

    # Short columns (codes, one holder column) so status and expiry fit a 1366 px screen.
    @admin.display(description="Product", ordering="product__code")
    def product_code(self, obj):
        return format_html('<span title="{}">{}</span>', obj.product.name, obj.product.code)

    @admin.display(description="Plan", ordering="plan__code")
    def plan_code(self, obj):
        return format_html('<span title="{}">{}</span>', obj.plan.name, obj.plan.code)

    @admin.display(description="Holder")
    def holder(self, obj):
        names = [str(h) for h in (obj.customer, obj.user) if h is not None]
        return " / ".join(names) or "—"

    @admin.display(description="Expires", ordering="expires_at")
    def expiry_date(self, obj):
        # The date only (UTC), so the list fits a 1366 px screen with status and expiry visible.
        if obj.expires_at is None:
            return "Perpetual"
        return format_html(
            '<time class="license-expiry" datetime="{}">{}</time>',
            obj.expires_at.isoformat(),
            timezone.localtime(obj.expires_at).strftime("%Y-%m-%d"),
        )

    @admin.display(description="Key", ordering="key")
    def key_display(self, obj):
        return format_html('<code class="license-key">{}</code>', obj.key)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        # Colours come from licensing/admin.css: no inline style under the Content-Security-Policy.
        status, label = obj.status, obj.get_status_display()
        if obj.status == LicenseStatus.ACTIVE and obj.is_expired:
            status, label = "expired", "Expired"
        return format_html(
            '<strong class="license-status license-status-{}">{}</strong>', status, label
        )

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

    list_display = ("created_at", "code", "licence", "client_address")
    list_filter = ("code",)
    search_fields = ("license__key", "client_address")
    list_select_related = ("license",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Licence", ordering="license__key")
    def licence(self, obj):
        return licence_link(obj.license)

    def has_delete_permission(self, request, obj=None):
        return False
