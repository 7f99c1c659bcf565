"""The tenant administrator's pages for webhooks: endpoints (the secret shown once, Rotate) and
the delivery log (Resend). Every write goes through webhooks.services, like the API."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from tenants import secret_handoff
from tenants.admin import SchemaScopedAdmin
from webhooks import services, targets
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint

# The request attribute that carries a new secret from save_model to response_add (same request).
_NEW_SECRET = "_webhook_new_secret"
EDITABLE_FIELDS = ("url", "description", "events", "active")


class SecretHandoff(secret_handoff.SecretHandoff):
    """An endpoint's new signing secret, on its way to the endpoint's secret page."""

    def __init__(self, endpoint_id: int):
        path = reverse("admin:webhooks_webhookendpoint_secret", args=[endpoint_id])
        super().__init__("webhook", endpoint_id, path)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https", label="URL")
    events = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every event, including types added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = EDITABLE_FIELDS

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            targets.check_url(url)
        except targets.TargetRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(secret_handoff.SecretPageMixin, SchemaScopedAdmin, admin.ModelAdmin):
    handoff_class = SecretHandoff
    lost_secret_message = (
        "A signing secret is shown only once, right after it is made. If it was lost, "
        "rotate it to issue a new one."
    )
    form = WebhookEndpointForm
    list_display = ("url", "active", "subscribed", "secret_hint", "failing_since", "delivery_log")
    list_filter = ("active",)
    search_fields = ("url", "description")
    readonly_fields = ("secret_hint", "disabled_reason", "failing_since", "delivery_log")
    secret_template = "admin/webhooks/webhookendpoint/secret.html"
    rotate_confirmation_template = "admin/webhooks/webhookendpoint/rotate_confirmation.html"

    def get_fields(self, request, obj=None):
        return EDITABLE_FIELDS if obj is None else (*EDITABLE_FIELDS, *self.readonly_fields)

    @admin.display(description="Events")
    def subscribed(self, obj):
        return ", ".join(obj.events) if obj.events else "all"

    @admin.display(description="Secret")
    def secret_hint(self, obj):
        return obj.secret_hint

    @admin.display(description="Deliveries")
    def delivery_log(self, obj):
        if obj.pk is None:
            return "-"
        url = (
            reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        )
        return format_html('<a href="{}">Delivery log</a>', url)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS}
        if not change:
            endpoint, secret = services.create_endpoint(**fields)
            obj.pk = endpoint.pk
            obj.refresh_from_db()
            obj._state.adding = False
            setattr(request, _NEW_SECRET, secret)
            return
        services.update_endpoint(WebhookEndpoint.objects.get(pk=obj.pk), **fields)
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.delete_endpoint(obj)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, _NEW_SECRET, None)
        if secret is None:  # pragma: no cover (save_model always sets it)
            return super().response_add(request, obj, post_url_continue)
        return SecretHandoff(obj.pk).redirect(request, secret, rotated=False)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if add:
            context.update(show_save_and_add_another=False, show_save_and_continue=False)
        elif obj is not None and self.has_change_permission(request, obj):
            context["rotate_url"] = reverse("admin:webhooks_webhookendpoint_rotate", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rotate/",
                self.admin_site.admin_view(self.rotate_view),
                name="webhooks_webhookendpoint_rotate",
            ),
            path(
                "<path:object_id>/secret/",
                self.admin_site.admin_view(self.secret_view),
                name="webhooks_webhookendpoint_secret",
            ),
            *super().get_urls(),
        ]

    def rotate_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        endpoint = self.get_object(request, unquote(object_id))
        if endpoint is None:
            raise Http404
        if request.method == "POST":
            secret = services.rotate_secret(endpoint)
            self.log_change(request, endpoint, "Rotated the signing secret.")
            return SecretHandoff(endpoint.pk).redirect(request, secret, rotated=True)
        context = {
            **self.admin_site.each_context(request),
            "title": "Rotate the signing secret?",
            "subtitle": str(endpoint),
            "opts": self.opts,
            "original": endpoint,
            "endpoint": endpoint,
            "overlap_hours": int(services.SECRET_OVERLAP.total_seconds() // 3600),
        }
        return TemplateResponse(request, self.rotate_confirmation_template, context)

    def secret_response(self, request, endpoint, secret: str, *, rotated: bool):
        """The one page that ever shows a signing secret: rendered in the response, stored in the
        database for signing only, never shown again."""
        context = {
            **self.admin_site.each_context(request),
            "title": "New signing secret" if rotated else "Webhook endpoint created",
            "subtitle": str(endpoint),
            "opts": self.opts,
            "original": endpoint,
            "endpoint": endpoint,
            "secret": secret,
            "renewed": rotated,
            "value_id": "webhook-secret-value",
            "overlap_hours": int(services.SECRET_OVERLAP.total_seconds() // 3600),
            "change_url": reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
            "changelist_url": reverse("admin:webhooks_webhookendpoint_changelist"),
        }
        response = TemplateResponse(request, self.secret_template, context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SchemaScopedAdmin, admin.ModelAdmin):
    """The delivery log: read-only, with Resend."""

    list_display = (
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_response_ms",
        "last_attempt_at",
        "created_at",
    )
    list_filter = ("status", "endpoint", "event__type")
    list_select_related = ("event", "endpoint")
    actions = ["resend"]
    fields = (
        "endpoint",
        "event_type",
        "event_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "last_response_ms",
        "last_response_excerpt",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    )
    readonly_fields = fields

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="webhook-id")
    def event_id(self, obj):
        return obj.event.message_id

    @admin.display(description="Payload")
    def payload(self, obj):
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Resend the selected deliveries", permissions=["view"])
    def resend(self, request, queryset):
        if not WebhookEndpointAdmin(WebhookEndpoint, self.admin_site).has_change_permission(
            request
        ):
            raise PermissionDenied
        queued = sum(services.resend(delivery) for delivery in queryset)
        self.message_user(
            request,
            f"Queued {queued} deliver{'ies' if queued != 1 else 'y'} again.",
            messages.SUCCESS,
        )
