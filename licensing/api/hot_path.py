"""The hot path of `POST /v1/licenses/validate`: the view's work without URL resolution or DRF.

Client applications call validation far more often than anything else, and the request is
always the same shape. `HotValidationMiddleware` sits right inside `api.errors.ApiErrorMiddleware`
(config/settings.py), so the middleware around it keeps its work: the tenant from the host, the
expired platform licence (403), the X-RateLimit-* headers and the give-back of unconfirmed
attempts (tenants.throttling), the RFC 9421 signature (tenants.http_signatures) and the JSON
replacement of error pages. For a *plain* request (below) it then does what DRF would do around
`LicenseValidationView`, through the same functions: the throttle (`TenantLicenceThrottle`: the
licence count and this attempt's abuse count in one round trip), `guard_against_guessing`, the
licence's read (`read_key`) and its answer (`checked_answer`), the contract's error bodies
(`api.errors.error_answer`), DRF's JSON renderer, the view's `Allow` header and the
`Content-Length` CommonMiddleware would set. One thing it does in another order: the licence is
read while Redis answers the counts (`HotValidationMiddleware.answer`), so the request waits
once. What it skips is what costs and decides nothing for such a request: URL resolution, DRF's
request wrapping, content negotiation, parser selection, the serializer, the response's template
machinery.

A request is plain when it is `POST` with `Content-Type: application/json`, no query string, an
`Accept` that DRF's JSON renderer satisfies as is (none, `*/*` or `application/json`), and a body
of UTF-8 JSON that `plain_validation_request` takes as sent (unknown fields are ignored, as the
serializer ignores them). Anything else (a malformed body, a field of another type, another media
type, `?format=`, OPTIONS) goes on to the DRF view, which answers it as before, errors included.
tests/licensing/test_hot_path.py sends each case to both paths and compares status, headers and
body.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.json import strict_constant

from api.errors import error_answer
from licensing.api.serializers import plain_validation_request
from licensing.api.views import NO_STORE, LicenseValidationView, checked_answer, read_key
from tenants.throttling import TenantLicenceThrottle, guard_against_guessing, request_tenant

PATH = "/v1/licenses/validate"
ACCEPTED = frozenset(("*/*", "application/json"))


def plain_request(request) -> dict | None:
    """The validated fields of a plain validation request (module notes), else None."""
    meta = request.META
    if (
        meta.get("CONTENT_TYPE") != "application/json"
        or meta.get("QUERY_STRING")
        or meta.get("HTTP_ACCEPT", "*/*") not in ACCEPTED
    ):
        return None
    try:
        data = json.loads(request.body.decode(), parse_constant=strict_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return plain_validation_request(data)


class HotValidationMiddleware:
    """Answers plain validation requests of a tenant (module notes); passes everything else."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.renderer = JSONRenderer()
        self.throttle = TenantLicenceThrottle()
        self.view = LicenseValidationView()
        # DRF's finalize_response: the view's methods, as every answer of the view carries them.
        self.allow = ", ".join(self.view.allowed_methods)

    def __call__(self, request):
        if request.path_info != PATH or request.method != "POST" or request_tenant(request) is None:
            return self.get_response(request)
        data = plain_request(request)
        if data is None:
            return self.get_response(request)
        # As DRF leaves them on the request for the middleware: no user, no credentials.
        request.user = request.auth = None
        try:
            status, body, headers = 200, self.answer(request, data), NO_STORE
        except Exception as exc:  # as DRF's handle_exception: the contract's answer, if it has one
            answer = error_answer(exc)
            if answer is None:
                raise
            status, body, headers = answer
        return self.respond(status, body, headers)

    def answer(self, request, data: dict) -> dict:
        """The view's steps, with one wait for the counter store and the database together: the
        counts go out, the licence is read while Redis answers, then the counts decide as they
        would have before the read (a refused attempt has no record, a 429 answers even with the
        database down). The read is a plain SELECT: reading it for a refused attempt changes
        nothing."""
        decide = self.throttle.start(request, self.view)
        try:
            check = read_key(data)
        finally:  # a refusal answers whether or not the read failed
            decide()
            guard_against_guessing(request, self.view.abuse_scope)
        return checked_answer(request, data, check)

    def respond(self, status: int, body: dict, headers: dict) -> HttpResponse:
        """The answer as DRF's Response and CommonMiddleware would make it, byte for byte."""
        response = HttpResponse(
            self.renderer.render(body), status=status, content_type="application/json"
        )
        for name, value in headers.items():
            response[name] = value
        response["Allow"] = self.allow
        response["Content-Length"] = str(len(response.content))
        return response
