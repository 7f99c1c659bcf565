"""A Python client of the licensing platform's REST API (see docs/client.md)."""

from licensing_client.client import (
    DEFAULT_TOKEN_VARIABLE,
    LicensingClient,
    MachineResult,
    RefreshedUserToken,
    ValidationResult,
)
from licensing_client.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
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
from licensing_client.heartbeats import Heartbeats
from licensing_client.redaction import Secret

__all__ = [
    "DEFAULT_TOKEN_VARIABLE",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "Heartbeats",
    "InvalidRequestError",
    "LicenceInvalidError",
    "LicensingClient",
    "LicensingError",
    "MachineResult",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RefreshedUserToken",
    "RequestTooLargeError",
    "Secret",
    "ServiceUnavailableError",
    "TransportError",
    "ValidationResult",
]
