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
    codes named in the `X-Required-Permissions` header (tokens.api.permissions)."""

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
    response = JsonResponse(error_body(message, details), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


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


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every API error answers with a body of CONTRACT section 6."""
    headers = {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        status, body = 401, error_body(INVALID_TOKEN)
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    elif isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)):
        status, body = 403, error_body(ACCESS_DENIED)
        if isinstance(exc, MissingPermissions):
            headers[REQUIRED_PERMISSIONS_HEADER] = ",".join(exc.missing)
    elif isinstance(exc, (exceptions.NotFound, Http404)):
        status, body = 404, error_body(NOT_FOUND)
    elif isinstance(
        exc,
        (
            exceptions.ValidationError,
            DjangoValidationError,
            exceptions.ParseError,
            exceptions.UnsupportedMediaType,
        ),
    ):
        status, body = 400, error_body(INVALID_REQUEST, _invalid_request_details(exc))
    elif isinstance(exc, exceptions.MethodNotAllowed):
        status, body = 405, error_body(METHOD_NOT_ALLOWED)
    elif isinstance(exc, exceptions.NotAcceptable):
        status, body = 406, error_body(NOT_ACCEPTABLE)
    elif isinstance(exc, exceptions.Throttled):
        limited = isinstance(exc, LicenceLimitReached)
        status, body = 429, error_body(LICENSE_LIMIT_REACHED if limited else TOO_MANY_REQUESTS)
        if exc.wait:
            headers["Retry-After"] = str(int(exc.wait) + 1)
    elif isinstance(exc, RequestDataTooBig):
        status, body = 413, error_body(REQUEST_TOO_LARGE)
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("Database unavailable: %s", type(exc).__name__)
        status, body = 503, error_body(SERVICE_UNAVAILABLE)
    elif isinstance(exc, exceptions.APIException):
        status, body = exc.status_code, error_body(str(exc.detail))
    else:
        return None  # unexpected: ApiErrorMiddleware logs it and answers 500
    return Response(body, status=status, headers=headers)


def not_found_view(request, exception=None):
    return json_error(404, NOT_FOUND)


REPLACED_MESSAGES = {
    401: INVALID_TOKEN,
    403: ACCESS_DENIED,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    406: NOT_ACCEPTABLE,
    413: REQUEST_TOO_LARGE,
    429: TOO_MANY_REQUESTS,
    503: SERVICE_UNAVAILABLE,
}


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
            logger.error("Database unavailable: %s", type(exception).__name__)
            return json_error(503, SERVICE_UNAVAILABLE)
        status = response.status_code
        if status == 400:
            return json_error(400, INVALID_REQUEST, {"non_field_errors": ["Malformed request."]})
        if status >= 500 and status != 503:
            return json_error(500, SERVER_ERROR)
        message = REPLACED_MESSAGES.get(status) or response.reason_phrase
        kept = {
            name: value
            for name, value in response.items()
            if name.lower() not in ("content-type", "content-length")
        }
        return json_error(status, message, headers=kept)

    def process_exception(self, request, exception):
        if not is_api_request(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            return json_error(413, REQUEST_TOO_LARGE)
        if isinstance(exception, Http404):
            return json_error(404, NOT_FOUND)
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.error("Database unavailable: %s", type(exception).__name__)
            return json_error(503, SERVICE_UNAVAILABLE)
        if isinstance(exception, DatabaseError):
            logger.exception("Database error on %s %s", request.method, request.path)
            return json_error(500, SERVER_ERROR)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error(500, SERVER_ERROR)
