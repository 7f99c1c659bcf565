from api.routers import resource
from webhooks.api import views

urlpatterns = [
    *resource("webhooks", views.WebhookEndpointViewSet, "webhook"),
    *resource("webhook-deliveries", views.WebhookDeliveryViewSet, "webhook-delivery"),
]
