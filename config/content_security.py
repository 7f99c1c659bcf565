"""A Content-Security-Policy on the HTML pages: the admins and the API's Swagger UI (/v1/docs).

Their scripts and styles are files served from this origin (no inline script, style or event
handler: templates/drf_spectacular/swagger_ui.html moves Swagger UI's inline style into a file and
its start script is fetched from /v1/docs?script), so a page cannot run what was injected into it.
JSON answers of the API carry no policy: nothing renders them as a page.
"""

POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_PREFIXES = ("/admin/", "/v1/docs")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(PAGE_PREFIXES):
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
