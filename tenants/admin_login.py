"""Admin login attempts throttled per client address (django-ratelimit), on every domain's admin.

Failed attempts (the login form shown again after a POST) are counted per address, and per tenant
since the counter cache's keys carry the schema. Past ADMIN_LOGIN_RATE the login page answers 429
until the window ends, even for the right password. Exact under concurrency: each POST is counted
(one atomic increment) before the password is checked and refused when that count passes the
limit; a POST that logs in gives its unit back. Each failure is recorded as a security event
by monitoring (Django's `user_login_failed`); a refused attempt sends `abuse_throttled`.
"""

import logging
import math

from django.conf import settings
from django.contrib import admin
from django.shortcuts import render
from django_ratelimit import ALL
from django_ratelimit.core import get_usage

from api.client_address import address_key
from tenants import signals
from tenants.throttling import counter_key, give_back

logger = logging.getLogger(__name__)

GROUP = "admin-login"
SCOPE = "admin_login"


def _failures(request, *, count_one: bool) -> dict | None:
    """django-ratelimit's usage of this address's counter; None when the counter store failed."""
    try:
        return get_usage(
            request,
            group=GROUP,
            key=lambda _group, req: address_key(req),
            rate=settings.ADMIN_LOGIN_RATE,
            method=ALL,
            increment=count_one,
        )
    except Exception as error:  # noqa: BLE001 - like the API's throttle, an unreadable store fails open
        logger.error("Admin login throttle unavailable: %s: %s", type(error).__name__, error)
        return None


def admin_login(request, extra_context=None):
    """admin.site.login, refused with 429 once the address has failed too often."""
    attempt = request.method == "POST"
    usage = _failures(request, count_one=attempt)
    if usage is not None and _throttled(usage, counted=attempt):
        signals.abuse_throttled.send(
            sender=__name__, request=request, scope=SCOPE, address=address_key(request)
        )
        return refused(request, max(1, usage["time_left"]))
    response = admin.site.login(request, extra_context)
    if (
        attempt and usage is not None and response.status_code != 200
    ):  # not the form again: no failure
        give_back(request, counter_key(GROUP, address_key(request), settings.ADMIN_LOGIN_RATE))
    return response


def _throttled(usage: dict, *, counted: bool) -> bool:
    # A POST has just been counted, so it is refused past the limit; a GET only reads, at it.
    return usage["count"] > usage["limit"] if counted else usage["count"] >= usage["limit"]


def refused(request, seconds: int):
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed login attempts",
        "minutes": max(1, math.ceil(seconds / 60)),
    }
    response = render(request, "admin/login_throttled.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
