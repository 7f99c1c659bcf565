"""The API's own description, readable without a token: /v1/ (an index linking the other two),
/v1/schema (OpenAPI 3) and /v1/docs.

/v1/schema answers YAML (application/vnd.oai.openapi) by default, and by `Accept` or `?format=`:
`?format=json` or `Accept: application/json` give `application/json`, which browsers display;
`?format=yaml` or `Accept: application/yaml` YAML; the vnd.oai types are served when asked for.

Swagger UI's start script is served as a file (/v1/docs?script), not inline, so the page keeps
the Content-Security-Policy of config/content_security.py."""

from django.urls import path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.api_index import ApiIndexView

urlpatterns = [
    path("", ApiIndexView.as_view(), name="api-index"),
    path(
        "schema",
        # The first renderer of a `?format=` wins: plain application/json before the vnd.oai type.
        SpectacularAPIView.as_view(
            renderer_classes=[
                OpenApiYamlRenderer,
                OpenApiJsonRenderer2,
                OpenApiJsonRenderer,
                OpenApiYamlRenderer2,
            ]
        ),
        name="schema",
    ),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]
