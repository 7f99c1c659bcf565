"""The hot path of the client applications' endpoints: the views' work without URL resolution or DRF.

Client applications call validation far more often than anything else, then heartbeats and
activation at start-up, and the requests are always the same shape. `HotPathMiddleware` sits right
inside `api.errors.ApiErrorMiddleware` (config/settings.py), so the middleware around it keeps its
work: the tenant from the host, the expired platform licence (403), the X-RateLimit-* headers and
the give-back of unconfirmed attempts (tenants.throttling), the RFC 9421 signature
(tenants.http_signatures) and the JSON replacement of error pages. For a *plain* request (below)
to `POST /v1/licenses/validate`, `/heartbeat` or `/activate` it then does what DRF would do around
the view, through the same functions: the throttle (`TenantLicenceThrottle`: the licence count and
this attempt's abuse count in one round trip), `guard_against_guessing`, the view's answer
(`checked_answer` after `read_key`, `heartbeat_answer`, `activation_answer`), the contract's error
bodies (`api.errors.error_answer`), DRF's JSON renderer, the view's `Allow` header and the
`Content-Length` CommonMiddleware would set. One thing it does in another order, on validation
only: the licence is read while Redis answers the counts (`HotPathMiddleware.validation`), so the
request waits once (heartbeat and activation write, so they wait for the throttle first, as in
DRF). What it skips is what costs and decides nothing for such a request: URL resolution, DRF's
request wrapping, content negotiation, parser selection, the serializer, the response's template
machinery.

A request is plain when it is `POST` with `Content-Type: application/json`, no query string, an
`Accept` that DRF's JSON renderer satisfies as is (none, `*/*` or `application/json`), and a body
of UTF-8 JSON that the endpoint's plain reader takes as sent (`plain_validation_request`,
`plain_machine_request`, `plain_activation_request`: unknown fields are ignored, as the
serializers ignore them; an activation that describes its machine is not plain). Anything else (a
malformed body, a field of another type, another media type, `?format=`, OPTIONS) goes on to the
DRF view, which answers it as before, errors included. tests/licensing/test_hot_path.py sends each
case to both paths and compares status, headers, body, records and machines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.json import strict_constant

from api.errors import error_answer
from licensing.api.serializers import (
    plain_activation_request,
    plain_machine_request,
    plain_validation_request,
)
from licensing.api.views import (
    NO_STORE,
    Answer,
    ClientApplicationView,
    LicenseActivationView,
    LicenseHeartbeatView,
    LicenseValidationView,
    activation_answer,
    checked_answer,
    heartbeat_answer,
    read_key,
)
from tenants.throttling import TenantLicenceThrottle, guard_against_guessing, request_tenant

ACCEPTED = frozenset(("*/*", "application/json"))


class Route(NamedTuple):
    """A path the hot path answers: its DRF view (abuse scope, allowed methods), the reader of a
    plain request's fields and the answer once the throttles allowed the request (None: the
    validation's own, which overlaps them with the read)."""

    view: ClientApplicationView
    plain: Callable[[object], dict | None]
    answer: Callable[[object, dict], Answer] | None
    allow: str


def route(view: type[ClientApplicationView], plain, answer) -> Route:
    # DRF's finalize_response: the view's methods, as every answer of the view carries them.
    instance = view()
    return Route(instance, plain, answer, ", ".join(instance.allowed_methods))


def plain_request(request, plain: Callable[[object], dict | None]) -> dict | None:
    """The validated fields of a plain request (module notes), else None."""
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
    return plain(data)


class HotPathMiddleware:
    """Answers plain requests of a tenant to the client applications' hot endpoints (module
    notes); passes everything else."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.renderer = JSONRenderer()
        self.throttle = TenantLicenceThrottle()
        self.routes = {
            "/v1/licenses/validate": route(LicenseValidationView, plain_validation_request, None),
            "/v1/licenses/heartbeat": route(
                LicenseHeartbeatView, plain_machine_request, heartbeat_answer
            ),
            "/v1/licenses/activate": route(
                LicenseActivationView, plain_activation_request, activation_answer
            ),
        }

    def __call__(self, request):
        hot = self.routes.get(request.path_info)
        if hot is None or request.method != "POST" or request_tenant(request) is None:
            return self.get_response(request)
        data = plain_request(request, hot.plain)
        if data is None:
            return self.get_response(request)
        # As DRF leaves them on the request for the middleware: no user, no credentials.
        request.user = request.auth = None
        try:
            if hot.answer is None:
                status, body, headers = 200, self.validation(request, hot.view, data), NO_STORE
            else:
                status, body, headers = self.answer(request, hot, data)
        except Exception as exc:  # as DRF's handle_exception: the contract's answer, if it has one
            answer = error_answer(exc)
            if answer is None:
                raise
            status, body, headers = answer
        return self.respond(status, body, headers, hot.allow)

    def answer(self, request, hot: Route, data: dict) -> Answer:
        """DRF's order: the throttle (the licence count and this attempt's abuse count in one
        round trip), the abuse guard, the view's answer."""
        self.throttle.allow_request(request, hot.view)
        guard_against_guessing(request, hot.view.abuse_scope)
        return hot.answer(request, data)

    def validation(self, request, view, data: dict) -> dict:
        """The validation's steps, with one wait for the counter store and the database together:
        the counts go out, the licence is read while Redis answers, then the counts decide as they
        would have before the read (a refused attempt has no record, a 429 answers even with the
        database down). The read is a plain SELECT: reading it for a refused attempt changes
        nothing."""
        decide = self.throttle.start(request, view)
        try:
            check = read_key(data)
        finally:  # a refusal answers whether or not the read failed
            decide()
            guard_against_guessing(request, view.abuse_scope)
        return checked_answer(request, data, check)

    def respond(self, status: int, body: dict, headers: dict, allow: str) -> HttpResponse:
        """The answer as DRF's Response and CommonMiddleware would make it, byte for byte."""
        response = HttpResponse(
            self.renderer.render(body), status=status, content_type="application/json"
        )
        for name, value in headers.items():
            response[name] = value
        response["Allow"] = allow
        response["Content-Length"] = str(len(response.content))
        return response
