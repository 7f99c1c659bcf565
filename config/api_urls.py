"""The REST API of a tenant's domain; each app contributes its own `api/urls.py`."""

from django.urls import include, path

urlpatterns = [
    path("", include("tokens.api.urls")),
    path("", include("licensing.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("api.openapi_urls")),  # /v1/, /v1/schema and /v1/docs, no token
]
