"""The API's own description, readable without a token: /v1/ (an index linking the other two),
/v1/schema (OpenAPI 3) and /v1/docs.

Swagger UI's start script is served as a file (/v1/docs?script), not inline, so the page keeps
the Content-Security-Policy of config/content_security.py."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.api_index import ApiIndexView

urlpatterns = [
    path("", ApiIndexView.as_view(), name="api-index"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]
