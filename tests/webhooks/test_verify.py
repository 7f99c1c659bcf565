"""licensing_client.verify_webhook against signatures made by the `standardwebhooks` package."""

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from licensing_client import WebhookVerificationError, verify_webhook
from webhooks.services import new_secret

BODY = b'{"id":"msg_1","type":"license.created","data":{}}'


def signed(secret: str, at: float | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    moment = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(moment.timestamp())),
        "Webhook-Signature": Webhook(secret).sign(msg_id, moment, BODY.decode()),
    }


def test_a_valid_signature_returns_the_event():
    secret = new_secret()
    assert verify_webhook(signed(secret), BODY, secret)["type"] == "license.created"
    assert verify_webhook(signed(secret), BODY.decode(), [new_secret(), secret])["id"] == "msg_1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b, s: (h, b.replace(b"created", b"revoked"), s),  # another body
        lambda h, b, s: ({**h, "Webhook-Id": "msg_2"}, b, s),  # another message
        lambda h, b, s: (h, b, new_secret()),  # another secret
        lambda h, b, s: ({**h, "Webhook-Signature": "v2," + h["Webhook-Signature"][3:]}, b, s),
        lambda h, b, s: ({k: v for k, v in h.items() if k != "Webhook-Signature"}, b, s),
        lambda h, b, s: ({**h, "Webhook-Timestamp": "soon"}, b, s),
    ],
)
def test_anything_else_is_refused(tamper):
    secret = new_secret()
    headers, body, key = tamper(signed(secret), BODY, secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, key)


def test_old_or_future_timestamps_are_refused():
    secret = new_secret()
    for offset in (-301, 301):
        with pytest.raises(WebhookVerificationError, match="timestamp"):
            verify_webhook(signed(secret, at=time.time() + offset), BODY, secret)
