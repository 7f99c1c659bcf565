"""Signed answers: RFC 9421 HTTP Message Signatures over an RFC 9530 Content-Digest.

A view asks for it with one line, by inheriting `SignedAnswers` (or setting `signed_answers =
True`). `SignedAnswerMiddleware` then signs every answer of that view's route with the tenant's
current Ed25519 key, error answers included: those of the view and of DRF's exception handler
(400, 429, ...) and those given before the view runs (403 Invalid license, 413 Request too large),
since it sits right inside the tenant middleware and finds the route itself when no view ran.

Each signed answer carries:

    Content-Digest: sha-256=:<base64 of SHA-256 of the body bytes sent>:
    Signature-Input: sig1=("@method";req "@path";req "@query";req "@status" "content-digest")
        ;created=<unix time>;keyid="<kid>";alg="ed25519"
    Signature: sig1=:<base64 Ed25519 signature of the signature base>:

Request components in a response carry the `req` flag (RFC 9421 section 2.4). The host is not
covered, so a TLS-terminating proxy cannot break verification; the tenant is bound through the key
id (every key belongs to one tenant) and, on success answers, the body's `tenant` field. The body
of a success answer also holds the server time `ts` and the request's `nonce`, when it sent one.
The signature covers the bytes sent, never a re-serialisation. docs/offline.md has the details.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.encoding import escape_uri_path
from rest_framework import serializers

from api.errors import is_api_request
from tenants.signing_keys import current_signer

logger = logging.getLogger(__name__)

LABEL = "sig1"
ALGORITHM = "ed25519"
COVERED = ('"@method";req', '"@path";req', '"@query";req', '"@status"', '"content-digest"')
MAX_NONCE_LENGTH = 64


def content_digest(body: bytes) -> str:
    """RFC 9530's Content-Digest field value for `body`, with SHA-256."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


COVERED_LIST = f"({' '.join(COVERED)})"


def signature_params(created: int, kid: str) -> str:
    return f'{COVERED_LIST};created={created};keyid="{kid}";alg="{ALGORITHM}"'


_escaped_path = lru_cache(maxsize=4096)(escape_uri_path)  # pure; a route's path, once


def request_target(request) -> tuple[str, str]:
    """@path and @query of the request as the client sent them (the query with its "?")."""
    return _escaped_path(request.path), "?" + request.META.get("QUERY_STRING", "")


def signature_base(
    *, method: str, path: str, query: str, status: int, digest: str, params: str
) -> bytes:
    """RFC 9421 section 2.5: one line per covered component, then the signature parameters."""
    values = (method, path, query, str(status), digest)
    lines = [f"{name}: {value}" for name, value in zip(COVERED, values, strict=True)]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("ascii")


def sign_response(request, response, signer) -> None:
    """Add Content-Digest, Signature-Input and Signature to `response` (its bytes are final)."""
    digest = content_digest(response.content)
    params = signature_params(int(time.time()), signer.kid)
    path, query = request_target(request)
    base = signature_base(
        method=request.method,
        path=path,
        query=query,
        status=response.status_code,
        digest=digest,
        params=params,
    )
    response["Content-Digest"] = digest
    response["Signature-Input"] = f"{LABEL}={params}"
    response["Signature"] = f"{LABEL}=:{base64.b64encode(signer.sign(base)).decode()}:"


@lru_cache(maxsize=4096)
def _route_is_signed(urlconf: str | None, path: str) -> bool:
    try:
        match = resolve(path, urlconf=urlconf)
    except Resolver404:
        return False
    return view_is_signed(match.func)


def view_is_signed(func) -> bool:
    view_class = getattr(func, "view_class", None) or getattr(func, "cls", None)
    return bool(getattr(view_class, "signed_answers", False))


def wants_signature(request) -> bool:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return view_is_signed(match.func)
    # Answered before URL resolution (expired licence, body too large): find the route.
    return _route_is_signed(getattr(request, "urlconf", None), request.path_info)


class SignedAnswerMiddleware:
    """Signs every /v1/ answer of a tenant whose route asks for it (see the module's notes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME
            or response.streaming
            or not is_api_request(request)
            or not wants_signature(request)
        ):
            return response
        try:
            sign_response(request, response, current_signer(tenant))
        except (DatabaseError, ImproperlyConfigured) as error:
            # Unsigned, the answer is refused by a verifying client, which is the safe failure.
            logger.error("Could not sign the answer for %s: %s", tenant.schema_name, error)
        return response


# --- The signed body's freshness fields, for the views.


class NonceField(serializers.CharField):
    """The request's optional `nonce`, echoed in the signed answer so it cannot be replayed."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_NONCE_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault(
            "help_text",
            f"Any string of 1 to {MAX_NONCE_LENGTH} characters; echoed in the signed answer.",
        )
        super().__init__(**kwargs)


def iso_utc(moment: datetime) -> str:
    """A time as signed bodies and licence files write it: ISO 8601, UTC, Z, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def server_time() -> str:
    return iso_utc(timezone.now())


class SignedAnswers:
    """View mixin: every answer is signed; `signed_body` adds `tenant`, `ts` and `nonce`."""

    signed_answers = True

    def signed_body(self, body: dict, nonce: str | None = None) -> dict:
        return signed_body(self.request, body, nonce)


def signed_body(request, body: dict, nonce: str | None = None) -> dict:
    """`body` with the freshness fields of a signed answer: `tenant`, `ts` and `nonce`."""
    fresh: dict = {"tenant": request.tenant.schema_name, "ts": server_time()}
    if nonce is not None:
        fresh["nonce"] = nonce
    return {**body, **fresh}
