"""The webhooks API's OpenAPI description, next to its views (webhooks/api/views.py): each
operation's texts and examples (the create answer's body is on the view's `create`)."""

from api.openapi_texts import WHEN, resource

WEBHOOK = {
    "id": 2,
    "url": "https://hooks.northwind.example/licensing",
    "description": "Order system",
    "events": ["license.created", "license.updated"],
    "active": True,
    "secret_hint": "whsec_…WkY=",
    "disabled_reason": "",
    "created_at": WHEN,
    "updated_at": WHEN,
}
DELIVERY = {
    "id": 90,
    "endpoint": 2,
    "event_id": "5b1f6c1e-2a7d-4a53-9d0e-0f4f3c8b9a21",
    "event_type": "license.created",
    "status": "delivered",
    "attempts": 1,
    "last_status_code": 200,
    "last_error": "",
    "last_response_ms": 84,
    "last_response_excerpt": "ok",
    "last_attempt_at": WHEN,
    "next_attempt_at": None,
    "delivered_at": WHEN,
    "created_at": WHEN,
}

endpoints = resource(
    "/v1/webhooks",
    "webhook endpoint",
    "webhook endpoints",
    "A webhook endpoint receives the tenant's events, signed with its secret "
    "(docs/webhooks.md); the secret is in the create answer only.",
    WEBHOOK,
    create={
        "url": "https://hooks.northwind.example/licensing",
        "events": ["license.created", "license.updated"],
    },
    change={"active": False},
    # The signing secret, shown once.
    created={"secret": "whsec_si4sPIVUcsocyNHosa5DlJv3K04m8KvLZI+8yEHWWkY="},
)
deliveries = resource(
    "/v1/webhook-deliveries",
    "webhook delivery",
    "webhook deliveries",
    "Each delivery is one event sent to one endpoint: how many attempts it took, the last "
    "HTTP status and an excerpt of the answer, and when it is retried next.",
    DELIVERY,
)
