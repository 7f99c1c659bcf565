"""What can go wrong when calling the licensing API: one exception class per error body."""

from __future__ import annotations

from typing import Any


class LicensingError(Exception):
    """Base class of every error this client raises."""


class ConfigurationError(LicensingError):
    """The client cannot run as configured (no User Token, plain HTTP to a remote host, ...)."""


class TransportError(LicensingError):
    """The server could not be reached, or answered something that is not the API."""


class ApiError(LicensingError):
    """The API answered with an error body `{"error": ..., "details"?: ...}`."""

    def __init__(
        self, status: int, error: str, details: Any = None, retry_after: float | None = None
    ):
        self.status = status
        self.error = error
        self.details = details
        self.retry_after = retry_after
        super().__init__(f"{status} {error}" + (f": {details}" if details else ""))


class AuthenticationError(ApiError):
    """401 Invalid token, even after refreshing and exchanging the User Token again."""


class PermissionDeniedError(ApiError):
    """403 Access denied: the User Token lacks a permission this call needs."""


class LicenceInvalidError(ApiError):
    """403 Invalid license: the tenant's platform licence has expired."""


class NotFoundError(ApiError):
    """404 Not found: an unknown object (or one of another tenant), or an unknown route."""


class InvalidRequestError(ApiError):
    """400 Invalid request; `details` says which field is wrong and why."""


class RequestTooLargeError(ApiError):
    """413 Request too large."""


class ConflictError(ApiError):
    """409: the licence's activation limit (`Activation limit reached`) or churn budget
    (`Deactivation limit reached`, with `retry_after`) refused the call. Not retried."""

    @property
    def activation_limit(self) -> bool:
        return self.error == "Activation limit reached"


class RateLimitError(ApiError):
    """429, after the bounded retries (or at once when the wait would be too long).

    `licence_limit` tells the tenant's request limit (plan for it) from the per-address abuse
    throttle (stop guessing); `retry_after` is the server's wait in seconds, when it sent one.
    """

    @property
    def licence_limit(self) -> bool:
        return "license limit" in self.error


class ServiceUnavailableError(ApiError):
    """503 Service unavailable (retried first for calls that are safe to repeat)."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_for(status: int, body: dict, retry_after: float | None) -> ApiError:
    error = str(body.get("error", "")) or f"HTTP {status}"
    if status == 403:
        kind = LicenceInvalidError if error == "Invalid license" else PermissionDeniedError
    else:
        kind = BY_STATUS.get(status, ApiError)
    return kind(status, error, body.get("details"), retry_after)


# --- Verifying signed answers and offline licence files (licensing_client.verification)


class VerificationError(LicensingError):
    """A signed answer or a licence file cannot be trusted or used; never act on its content."""


class BadSignatureError(VerificationError):
    """The signature or Content-Digest does not verify (tampered body, status, path, headers),
    is missing, or the answer does not echo the request's nonce."""


class UnknownKeyIdError(VerificationError):
    """Signed with a key id that is not among the tenant's public keys given."""


class MalformedLicenseFileError(VerificationError):
    """Not a licence file of this format."""


class WrongLicenseKeyError(VerificationError):
    """The licence file belongs to another licence key."""


class DecryptionError(VerificationError):
    """An encrypted licence file does not decrypt: another licence key or, for a file bound to a
    machine, another fingerprint."""


class WrongFingerprintError(VerificationError):
    """The licence file is bound to another machine (or to one where none was given)."""


class LicenseFileExpiredError(VerificationError):
    """The licence file's `expires` has passed: check out a new one."""


class ClockWentBackwardsError(VerificationError):
    """The clock is behind a time already seen by more than the tolerance (set back to stretch a
    file), or an answer is older than one already seen (a replay)."""
