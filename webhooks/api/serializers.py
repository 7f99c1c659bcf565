from rest_framework import serializers

from api.serializers import StrictSerializer
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint


class WebhookEndpointSerializer(StrictSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        max_length=len(EventType.values),
        help_text="Event types to send; empty means every event.",
    )
    url = serializers.CharField(max_length=2000)
    secret_hint = serializers.CharField(read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = (
            "id",
            "url",
            "description",
            "events",
            "active",
            "secret_hint",
            "disabled_reason",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("disabled_reason", "created_at", "updated_at")


class CreatedWebhookEndpointSerializer(WebhookEndpointSerializer):
    """The answer to POST: the only one that carries the signing secret."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = (*WebhookEndpointSerializer.Meta.fields, "secret")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.message_id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "endpoint",
            "event_id",
            "event_type",
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
        )
        read_only_fields = fields
