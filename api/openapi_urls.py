"""The API's own description, readable without a token: /v1/ (an index linking the other two),
/v1/schema (OpenAPI 3) and /v1/docs.

/v1/schema answers YAML (application/vnd.oai.openapi) by default, and by `Accept` or `?format=`:
`?format=json` or `Accept: application/json` give `application/json`, which browsers display;
`?format=yaml` or `Accept: application/yaml` YAML; the vnd.oai types are served when asked for.
A browser (its `Accept` names `text/html`) is never answered with a type it would download: YAML
comes as `text/plain; charset=utf-8`, JSON as `application/json`, both `Content-Disposition:
inline`, so the document opens in the tab.

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

from api.api_index import ApiIndexView


class OpenApiYamlTextRenderer(OpenApiYamlRenderer):
    """YAML as plain text: the type browsers display instead of downloading."""

    media_type = "text/plain"


# What a browser is given instead of a type it would download, by the chosen renderer's format.
BROWSER_RENDERERS = {"yaml": OpenApiYamlTextRenderer, "json": OpenApiJsonRenderer2}
DISPLAYABLE = {OpenApiYamlTextRenderer.media_type, OpenApiJsonRenderer2.media_type}


class SchemaView(SpectacularAPIView):
    renderer_classes = [
        # The first renderer of a `?format=` wins: plain application/json before the vnd.oai one.
        OpenApiYamlRenderer,
        OpenApiJsonRenderer2,
        OpenApiJsonRenderer,
        OpenApiYamlRenderer2,
    ]

    def perform_content_negotiation(self, request, force=False):
        renderer, media_type = super().perform_content_negotiation(request, force)
        if is_browser(request) and renderer.media_type not in DISPLAYABLE:
            renderer = BROWSER_RENDERERS[renderer.format]()
            media_type = renderer.media_type
        return renderer, media_type


def is_browser(request) -> bool:
    """A page navigation: browsers put text/html first in `Accept`; API clients never ask for it."""
    return "text/html" in request.headers.get("Accept", "")


urlpatterns = [
    path("", ApiIndexView.as_view(), name="api-index"),
    path(
        "schema",
        SchemaView.as_view(),
        name="schema",
    ),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]
