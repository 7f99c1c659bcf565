"""Checking a webhook the platform sent (Standard Webhooks: webhook-id, webhook-timestamp,
webhook-signature), with the standard library only. See docs/webhooks.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from licensing_client.errors import LicensingError

TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(LicensingError):
    """The webhook's headers or signature do not check out: answer 400 and do not act on it."""


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:
        raise WebhookVerificationError("The secret is not a whsec_ secret.") from None


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | Iterable[str],
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """The event (parsed JSON) if `body` was signed with `secret` (or one of several, during a
    rotation) less than `tolerance` seconds ago; else WebhookVerificationError.

    `headers` may use any case. Dedupe on the event's `id` (= the webhook-id header): a delivery
    can arrive more than once.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as missing:
        raise WebhookVerificationError(f"Missing header {missing.args[0]}.") from None
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("Invalid webhook-timestamp.") from None
    now = time.time() if now is None else now
    if abs(now - sent) > tolerance:
        raise WebhookVerificationError("The webhook-timestamp is too old or in the future.")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    signed = f"{message_id}.{sent}.".encode() + raw
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [
        base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    ]
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and any(hmac.compare_digest(value, e) for e in expected):
            return json.loads(raw)
    raise WebhookVerificationError("No valid signature.")
