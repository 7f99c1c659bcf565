"""The tenant administrator's pages for User Tokens: the only place tokens are created.

Creating, updating, refreshing and (de)activating go through tokens.services, like the API, and
what an administrator may grant is bounded by their own admin rights (services.check_admin_grant).
A new secret is shown once, on the page the POST that made it redirects to (SecretHandoff); never
in the messages, the admin history or a log, and never again on a reload.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from tenants import secret_handoff
from tenants.admin import SchemaScopedAdmin, available_on_current_schema
from tokens import services
from tokens.forms import UserTokenAddForm, UserTokenForm
from tokens.models import UserToken

EDITABLE_FIELDS = ("name", "permissions", "expires_at", "allowed_ips")
# Fields no changelist lookup may touch: filtering on them would confirm or guess a digest.
UNSEARCHABLE_FIELDS = frozenset({"digest", "key_id"})


class SecretHandoff(secret_handoff.SecretHandoff):
    """A User Token's new secret, on its way to the token's secret page."""

    def __init__(self, token_id: int):
        path = reverse("admin:tokens_usertoken_secret", args=[token_id])
        super().__init__("user_token", token_id, path)


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [
            ("never", "Never expires"),
            ("soon", "Expires within 7 days"),
            ("later", "Expires later"),
            ("expired", "Expired"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        week = now + timedelta(days=7)
        match self.value():
            case "never":
                return queryset.filter(expires_at__isnull=True)
            case "soon":
                return queryset.filter(expires_at__gt=now, expires_at__lte=week)
            case "later":
                return queryset.filter(expires_at__gt=week)
            case "expired":
                return queryset.filter(expires_at__lte=now)
        return queryset


class ActiveFilter(admin.BooleanFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "active"


def short_date(moment) -> str:
    """A date that fits a list column (1366 px screens); the full time is on the token's page."""
    return timezone.localtime(moment).strftime("%Y-%m-%d")


def expiry_display(token: UserToken):
    if token.expires_at is None:
        return "Never"
    when = timezone.localtime(token.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    if token.is_expired:
        return format_html('<span class="token-status-expired">Expired {}</span>', when)
    return when


def change_url(token: UserToken) -> str:
    return reverse("admin:tokens_usertoken_change", args=[token.pk])


@admin.register(UserToken)
class UserTokenAdmin(secret_handoff.SecretPageMixin, SchemaScopedAdmin, admin.ModelAdmin):
    handoff_class = SecretHandoff
    lost_secret_message = (
        "A secret is shown only once, right after it is made, and is stored nowhere. "
        "If it was lost, refresh the token to issue a new one."
    )
    form = UserTokenForm
    add_form = UserTokenAddForm
    change_form_template = "admin/tokens/usertoken/change_form.html"
    secret_template = "admin/tokens/usertoken/secret.html"
    refresh_confirmation_template = "admin/tokens/usertoken/refresh_confirmation.html"

    list_display = ("name", "owner", "secret_end", "permission_count", "networks", "created",
                    "created_by", "last_used", "expiry", "active")  # fmt: skip
    list_filter = (("is_active", ActiveFilter), ExpiryFilter)
    # "=last_four": the secret's last four characters, matched exactly (case-insensitive), as
    # shown in the Secret column; never the digest or key id.
    search_fields = ("name", "owner__username", "=last_four")
    search_help_text = "Name, owner's username, or the secret's last four characters."
    list_select_related = ("owner", "created_by")
    actions = ["deactivate_selected"]

    add_fieldsets = (
        (
            None,
            {
                "fields": ("name", "user"),
                "description": (
                    "A User Token lets an integration call the REST API as the chosen user, with "
                    "exactly the permissions ticked below. Its secret is shown once, right after "
                    "you save."
                ),
            },
        ),
        ("Permissions", {"fields": ("permissions",)}),
        ("Restrictions", {"fields": ("expiry_preset", "expires_at", "allowed_ips")}),
    )
    fieldsets = (
        (None, {"fields": ("name", "owner", "secret_hint", "status")}),
        ("Permissions", {"fields": ("permissions",)}),
        ("Restrictions", {"fields": ("expiry_preset", "expires_at", "allowed_ips")}),
        (
            "Activity",
            {
                "fields": (
                    "created_at",
                    "created_by",
                    "refreshed_at",
                    "generation",
                    "last_used_at",
                    "last_used_from",
                    "deactivated_at",
                )
            },
        ),
    )
    # The secret's digest, key id and last four characters are never shown as fields nor edited.
    readonly_fields = (
        "owner",
        "secret_hint",
        "status",
        "created_at",
        "created_by",
        "refreshed_at",
        "generation",
        "last_used_at",
        "last_used_from",
        "deactivated_at",
    )

    class Media:
        css = {"all": ["tokens/admin.css"]}
        js = ["tokens/presets.js"]

    # --- Forms

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user  # a class made for this request: what this admin may grant
        return form

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split("__", 1)[0] in UNSEARCHABLE_FIELDS:
            return False
        return super().lookup_allowed(lookup, value, request)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS}
        if not change:
            owner = form.cleaned_data["user"]
            services.check_admin_grant(request.user, owner=owner, permissions=fields["permissions"])
            token, secret = services.create_user_token(
                owner=owner, created_by=request.user, **fields
            )
            obj.pk = token.pk
            obj.refresh_from_db()
            obj._state.adding = False
            request._user_token_secret = secret  # for response_add, in this same request
            return
        # Apply the changes to the row as it is now (locked), so a concurrent Refresh is not undone.
        with transaction.atomic():
            current = UserToken.objects.select_for_update().get(pk=obj.pk)
            services.check_admin_change(
                request.user, before=current.permissions, after=fields["permissions"]
            )
            services.update_user_token(
                current, actor=request.user, via="admin", request=request, **fields
            )
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        # save_model made the token in this same request; its page shows the secret once.
        return SecretHandoff(obj.pk).redirect(request, request._user_token_secret, refreshed=False)

    def may_refresh(self, request, token: UserToken) -> bool:
        try:
            services.check_admin_grant(
                request.user, owner=token.owner, permissions=token.permissions
            )
        except PermissionDenied:
            return False
        return True

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if add:
            context.update(show_save_and_add_another=False, show_save_and_continue=False)
        elif obj is not None and self.has_change_permission(request, obj):
            context.update(
                token_actions=True,
                refresh_url=(
                    reverse(f"admin:{self._url_name('refresh')}", args=[obj.pk])
                    if self.may_refresh(request, obj)
                    else None
                ),
                deactivate_url=reverse(f"admin:{self._url_name('deactivate')}", args=[obj.pk]),
                activate_url=reverse(f"admin:{self._url_name('activate')}", args=[obj.pk]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Read-only displays

    @admin.display(description="Permissions", ordering="permissions__len")
    def permission_count(self, obj):
        return len(obj.permissions)

    @admin.display(description="Expires", ordering="expires_at")
    def expiry(self, obj):
        return expiry_display(obj)

    @admin.display(description="Active", boolean=True, ordering="is_active")
    def active(self, obj):
        return obj.is_active

    @admin.display(description="Secret")
    def secret_hint(self, obj):
        return format_html(
            '<code>{}</code><span class="token-secret-note">{}</span>',
            obj.display_secret,
            "Only a keyed hash and the last four characters are stored. The secret was shown "
            "once; if it is lost, use Refresh to issue a new one.",
        )

    @admin.display(description="Secret", ordering="last_four")
    def secret_end(self, obj):
        return format_html("<code>…{}</code>", obj.last_four)

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj):
        return short_date(obj.created_at)

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used(self, obj):
        return short_date(obj.last_used_at) if obj.last_used_at else "Never"

    @admin.display(description="Networks")
    def networks(self, obj):
        networks = obj.allowed_ips or []
        if not networks:
            return "Any"
        more = len(networks) - 1
        return f"{networks[0]} +{more}" if more else networks[0]

    @admin.display(description="Last used from")
    def last_used_from(self, obj):
        return obj.last_used_ip or "—"

    @admin.display(description="Status")
    def status(self, obj):
        if not obj.is_active:
            return format_html('<span class="token-status-inactive">{}</span>', "Deactivated")
        if obj.is_expired:
            return format_html('<span class="token-status-expired">{}</span>', "Expired")
        return "Active"

    # --- Refresh, deactivate, activate

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/refresh/",
                wrap(self.refresh_view),
                name=self._url_name("refresh"),
            ),
            path(
                "<path:object_id>/secret/",
                wrap(self.secret_view),
                name=self._url_name("secret"),
            ),
            path(
                "<path:object_id>/deactivate/",
                wrap(self.deactivate_view),
                name=self._url_name("deactivate"),
            ),
            path(
                "<path:object_id>/activate/",
                wrap(self.activate_view),
                name=self._url_name("activate"),
            ),
            *super().get_urls(),
        ]

    def _url_name(self, action: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{action}"

    def _changeable_token(self, request, object_id) -> UserToken:
        if not self.has_change_permission(request):
            raise PermissionDenied
        token = self.get_object(request, unquote(object_id))
        if token is None:
            raise Http404("No such user token.")
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        return token

    def refresh_view(self, request, object_id):
        token = self._changeable_token(request, object_id)
        # Refreshing hands over a working secret: the same bounds as creating the token.
        services.check_admin_grant(request.user, owner=token.owner, permissions=token.permissions)
        if request.method == "POST":
            secret = services.refresh_user_token(
                token, actor=request.user, via="admin", request=request
            )
            self.log_change(
                request,
                token,
                "Refreshed the secret: every access and refresh token issued before stopped "
                "working.",
            )
            return SecretHandoff(token.pk).redirect(request, secret, refreshed=True)
        context = {
            **self.admin_site.each_context(request),
            "title": "Refresh the secret?",
            "subtitle": str(token),
            "opts": self.opts,
            "original": token,
            "change_url": change_url(token),
            "media": self.media,
        }
        return TemplateResponse(request, self.refresh_confirmation_template, context)

    def deactivate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        token = self._changeable_token(request, object_id)
        if token.is_active:
            services.deactivate_user_token(token, actor=request.user, via="admin", request=request)
            self.log_change(request, token, "Deactivated.")
        self.message_user(
            request,
            f"“{token.name}” is deactivated: requests with it are refused from now on.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url(token))

    def activate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        token = self._changeable_token(request, object_id)
        if not token.is_active:
            services.activate_user_token(token, actor=request.user, via="admin", request=request)
            self.log_change(request, token, "Activated.")
        self.message_user(request, f"“{token.name}” is active again.", messages.SUCCESS)
        return HttpResponseRedirect(change_url(token))

    @admin.action(description="Deactivate selected tokens", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        count = 0
        for token in queryset.filter(is_active=True):
            services.deactivate_user_token(token, actor=request.user, via="admin", request=request)
            self.log_change(request, token, "Deactivated.")
            count += 1
        self.message_user(
            request,
            f"Deactivated {count} user token{'s' if count != 1 else ''}.",
            messages.SUCCESS,
        )

    def secret_response(self, request, token: UserToken, secret: str, *, refreshed: bool):
        """The page showing a secret: rendered in the response, never cached."""
        context = {
            **self.admin_site.each_context(request),
            "title": "New secret" if refreshed else "User token created",
            "subtitle": str(token),
            "opts": self.opts,
            "original": token,
            "token": token,
            "secret": secret,
            "renewed": refreshed,
            "value_id": "user-token-value",  # the contract's element id
            "change_url": change_url(token),
            "changelist_url": reverse("admin:tokens_usertoken_changelist"),
            "has_add_permission": self.has_add_permission(request),
        }
        response = TemplateResponse(request, self.secret_template, context)
        response["Cache-Control"] = "no-store"
        return response


# --- Users: each user's page lists its tokens and links to the add form with the user filled in.

User = get_user_model()


class UserTokenInline(SchemaScopedAdmin, admin.TabularInline):
    """Read-only: tokens are only created through the User Token add form."""

    model = UserToken
    fk_name = "owner"
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "User Tokens"
    fields = ("token", "permission_count", "last_used_at", "expiry", "is_active")
    readonly_fields = fields
    ordering = ("name", "id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Token")
    def token(self, obj):
        return format_html('<a href="{}">{}</a>', change_url(obj), obj)

    @admin.display(description="Permissions")
    def permission_count(self, obj):
        return len(obj.permissions)

    @admin.display(description="Expires")
    def expiry(self, obj):
        return expiry_display(obj)


# Extend whichever User admin is registered (Django's own by default) rather than replace it.
_BaseUserAdmin = (
    type(admin.site.get_model_admin(User)) if admin.site.is_registered(User) else UserAdmin
)
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class TenantUserAdmin(_BaseUserAdmin):
    change_form_template = "admin/tokens/user/change_form.html"

    def get_inlines(self, request, obj):
        inlines = list(super().get_inlines(request, obj))
        if obj is not None and available_on_current_schema(UserToken):
            inlines.append(UserTokenInline)
        return inlines

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        token_admin = self.admin_site.get_model_admin(UserToken)
        if (
            obj is not None
            and obj.is_active
            and token_admin.has_add_permission(request)
            and services.may_manage_tokens_of(request.user, obj)
        ):
            add_url = reverse("admin:tokens_usertoken_add")
            context["user_token_add_url"] = f"{add_url}?{urlencode({'user': obj.pk})}"
        return super().render_change_form(request, context, add, change, form_url, obj)
