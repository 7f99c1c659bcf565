"""A Python client of the licensing platform's REST API (see docs/client.md)."""

from licensing_client.client import (
    DEFAULT_TOKEN_VARIABLE,
    LicensingClient,
    RefreshedUserToken,
    ValidationResult,
)
from licensing_client.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    LicenceInvalidError,
    LicensingError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    TransportError,
)
from licensing_client.redaction import Secret
from licensing_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "DEFAULT_TOKEN_VARIABLE",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "InvalidRequestError",
    "LicenceInvalidError",
    "LicensingClient",
    "LicensingError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RefreshedUserToken",
    "RequestTooLargeError",
    "Secret",
    "ServiceUnavailableError",
    "TransportError",
    "ValidationResult",
    "WebhookVerificationError",
    "verify_webhook",
]
