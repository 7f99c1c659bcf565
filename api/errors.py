"""The API's error bodies (CONTRACT section 6), produced in one place."""

import logging
import sys

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import got_request_exception
from django.db import DatabaseError, InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

INVALID_TOKEN = "Invalid token"
ACCESS_DENIED = "Access denied"
INVALID_LICENSE = "Invalid license"
LICENSE_LIMIT_REACHED = "Too Many Requests (Reached license limit)"
TOO_MANY_REQUESTS = "Too Many Requests"
INVALID_REQUEST = "Invalid request"
NOT_FOUND = "Not found"
METHOD_NOT_ALLOWED = "Method not allowed"
NOT_ACCEPTABLE = "Not acceptable"
REQUEST_TOO_LARGE = "Request too large"
SERVICE_UNAVAILABLE = "Service unavailable"
SERVER_ERROR = "Internal server error"
# Licence activations (licensing): refused while every slot or the churn budget is used up.
ACTIVATION_LIMIT_REACHED = "Activation limit reached"
DEACTIVATION_LIMIT_REACHED = "Deactivation limit reached"

API_PREFIX = "/v1/"


class LicenceLimitReached(exceptions.Throttled):
    """The tenant's platform licence allows no more requests this period (tenants.throttling)."""


class MissingPermissions(exceptions.PermissionDenied):
    """The token lacks permission codes the view requires: a 403 with the contract's body, the
    codes named in the `X-Required-Permissions` header (api.permissions)."""

    def __init__(self, missing):
        super().__init__()
        self.missing = tuple(missing)


REQUIRED_PERMISSIONS_HEADER = "X-Required-Permissions"


def error_body(message: str, details=None) -> dict:
    body = {"error": message}
    if details is not None:
        body["details"] = details
    return body


def json_error(status: int, message: str, details=None, headers=None) -> JsonResponse:
    """A plain Django response with an error body, for code that runs outside DRF views."""
    return json_answer(status, error_body(message, details), headers or {})


def is_api_request(request) -> bool:
    return request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")


def _invalid_request_details(exc):
    if isinstance(exc, DjangoValidationError):  # raised by services: the same shape as DRF's
        if hasattr(exc, "error_dict"):
            return {
                "non_field_errors" if field == NON_FIELD_ERRORS else field: messages
                for field, messages in exc.message_dict.items()
            }
        return {"non_field_errors": exc.messages}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        return detail if isinstance(detail, dict) else {"non_field_errors": detail}
    return {"body": [str(exc.detail)]}


# CONTRACT section 6 as one table: the status and message each exception answers with, the first
# row that matches. The exception handler (DRF views), ApiErrorMiddleware (everything else under
# /v1/) and the 404 view answer from it; Django's error page for a status alone is replaced by the
# status's last (most general) row.
ANSWERS: tuple[tuple[tuple[type[BaseException], ...], int, str], ...] = (
    ((exceptions.NotAuthenticated, exceptions.AuthenticationFailed), 401, INVALID_TOKEN),
    ((exceptions.PermissionDenied, DjangoPermissionDenied), 403, ACCESS_DENIED),
    ((exceptions.NotFound, Http404), 404, NOT_FOUND),
    (
        (
            exceptions.ValidationError,
            DjangoValidationError,
            exceptions.ParseError,
            exceptions.UnsupportedMediaType,
        ),
        400,
        INVALID_REQUEST,
    ),
    ((exceptions.MethodNotAllowed,), 405, METHOD_NOT_ALLOWED),
    ((exceptions.NotAcceptable,), 406, NOT_ACCEPTABLE),
    ((LicenceLimitReached,), 429, LICENSE_LIMIT_REACHED),
    ((exceptions.Throttled,), 429, TOO_MANY_REQUESTS),
    ((RequestDataTooBig,), 413, REQUEST_TOO_LARGE),
    ((OperationalError, InterfaceError), 503, SERVICE_UNAVAILABLE),
)
MESSAGES = {status: message for _types, status, message in ANSWERS}


def error_answer(exc) -> tuple[int, dict, dict] | None:
    """The status, body and headers `exc` answers with; None for an unexpected exception."""
    row = next((row for row in ANSWERS if isinstance(exc, row[0])), None)
    if row is None:
        if isinstance(exc, exceptions.APIException):
            return exc.status_code, error_body(str(exc.detail)), {}
        return None
    _types, status, message = row
    headers, details = {}, None
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    elif isinstance(exc, MissingPermissions):
        headers[REQUIRED_PERMISSIONS_HEADER] = ",".join(exc.missing)
    elif status == 400:
        details = _invalid_request_details(exc)
    elif status == 429 and exc.wait:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    elif status == 503:
        logger.error("Database unavailable: %s", type(exc).__name__)
    return status, error_body(message, details), headers


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every API error answers with a body of CONTRACT section 6."""
    answer = error_answer(exc)
    if answer is None:
        return None  # unexpected: ApiErrorMiddleware logs it and answers 500
    status, body, headers = answer
    return Response(body, status=status, headers=headers)


def json_answer(status: int, body: dict, headers: dict) -> JsonResponse:
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def not_found_view(request, exception=None):
    return json_answer(*error_answer(Http404()))


def declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def is_json(response) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


@receiver(got_request_exception)
def remember_exception(sender, request=None, **kwargs):
    """Keep the exception Django is about to turn into an error page, for ApiErrorMiddleware."""
    if request is not None:
        request._api_exception = sys.exc_info()[1]


class ApiErrorMiddleware:
    """Unhandled errors under /v1/ answer JSON, never a traceback or an HTML page; and no answer
    to a request carrying credentials may be stored by a cache (`Cache-Control: no-store`)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_request(request):
            return self.get_response(request)
        if declared_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return json_error(413, REQUEST_TOO_LARGE)  # refused before a byte of the body is read
        response = self.get_response(request)
        if response.status_code >= 400 and not is_json(response):
            # Django's own page for an error outside the view (an inner middleware failed, or
            # DEBUG's technical page): replaced by the body of the same case.
            response = self.replacement(response, getattr(request, "_api_exception", None))
        if "HTTP_AUTHORIZATION" in request.META:
            response["Cache-Control"] = "no-store"  # tenant data, for this caller only
        return response

    @staticmethod
    def replacement(response, exception) -> JsonResponse:
        if isinstance(exception, (OperationalError, InterfaceError)):
            return json_answer(*error_answer(exception))
        status = response.status_code
        if status == 400:
            return json_error(400, INVALID_REQUEST, {"non_field_errors": ["Malformed request."]})
        if status >= 500 and status != 503:
            return json_error(500, SERVER_ERROR)
        message = MESSAGES.get(status) or response.reason_phrase
        kept = {
            name: value
            for name, value in response.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return json_error(status, message, headers=kept)

    def process_exception(self, request, exception):
        if not is_api_request(request):
            return None
        answer = error_answer(exception)
        if answer is not None:
            return json_answer(*answer)
        if isinstance(exception, DatabaseError):
            logger.exception("Database error on %s %s", request.method, request.path)
            return json_error(500, SERVER_ERROR)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error(500, SERVER_ERROR)
