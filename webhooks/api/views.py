"""Webhook endpoints and their delivery log: parse, call a service, shape the answer."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from api.views import ResourceViewSet, object_id
from tokens.catalogue import Permission
from webhooks import services
from webhooks.api import openapi
from webhooks.api.serializers import (
    CreatedWebhookEndpointSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointSerializer,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint


@openapi.endpoints
class WebhookEndpointViewSet(ResourceViewSet):
    """Where the tenant's events are sent (docs/webhooks.md). The signing secret is in the POST
    answer only; URLs must be https and resolve to public addresses."""

    required_permissions = {
        "GET": (Permission.VIEW_WEBHOOKS,),
        "POST": (Permission.EDIT_WEBHOOKS,),
        "PATCH": (Permission.EDIT_WEBHOOKS,),
        "DELETE": (Permission.EDIT_WEBHOOKS,),
    }
    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.all()
    filters = {"active": (serializers.BooleanField, "active")}

    @extend_schema(
        request=WebhookEndpointSerializer, responses={201: CreatedWebhookEndpointSerializer}
    )
    def create(self, request):
        endpoint, secret = services.create_endpoint(**self.validated())
        endpoint.secret = secret
        data = CreatedWebhookEndpointSerializer(endpoint).data
        return Response(data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        return self.answer(services.update_endpoint(endpoint, **self.validated(instance=endpoint)))

    def destroy(self, request, pk=None):
        services.delete_endpoint(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@openapi.deliveries
class WebhookDeliveryViewSet(ResourceViewSet):
    """The delivery log: one row per event and endpoint, with its attempts and last answer."""

    required_permissions = {"GET": (Permission.VIEW_WEBHOOKS,)}
    serializer_class = WebhookDeliverySerializer
    queryset = WebhookDelivery.objects.select_related("event")
    filters = {
        "endpoint": (object_id, "endpoint"),
        "status": (
            lambda: serializers.ChoiceField(choices=WebhookDelivery.Status.choices),
            "status",
        ),
    }
