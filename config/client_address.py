"""The client's address: REMOTE_ADDR, unless a trusted proxy count is configured."""

from django.conf import settings


def client_address(request) -> str:
    """The address the request came from.

    With TRUSTED_PROXY_COUNT = N > 0, the N-th entry from the right of X-Forwarded-For is taken
    (each trusted proxy appends the address it saw); entries further left are client-supplied and
    ignored. With 0 (the default), X-Forwarded-For is ignored entirely.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies]
