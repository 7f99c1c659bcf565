"""What a user reads in the OpenAPI description: each operation's summary, description and
examples (config.openapi.add_texts applies them). Descriptions say what an operation does and its
main errors; the permission it needs is added from the code (config.openapi.ApiAutoSchema).
Example values are the demo tenant's (licensing/sample_data.py) and this service's key format.
"""

TENANT_URL = "https://acme.licensing.example"
KEY = "7K3QH-M2X9P-4RTVW-8CJ6N-YB5DZ"
OTHER_KEY = "Q8N4T-2HVXC-K7M3R-9PWJ5-6BYDZ"
WHEN = "2026-12-02T09:30:00Z"
CURSOR = "cD0yMDI2LTEyLTAyKzA5JTNBMzAlM0EwMCUyQjAwJTNBMDA"

PRODUCT = {
    "id": 1,
    "code": "photon",
    "name": "Photon Editor",
    "description": "A photo editor for desktop.",
    "active": True,
    "plans": [],
    "created_at": WHEN,
    "updated_at": WHEN,
}
PLAN = {
    "id": 2,
    "product": 1,
    "code": "perpetual",
    "name": "Perpetual",
    "duration_days": None,
    "max_activations": 3,
    "max_deactivations": None,
    "heartbeat_seconds": None,
    "heartbeat_grace_seconds": None,
    "revive_seconds": None,
    "entitlements": ["export-png", "export-svg", "batch-export", "plugins"],
    "created_at": WHEN,
    "updated_at": WHEN,
}
PRODUCT = {**PRODUCT, "plans": [PLAN]}
CUSTOMER = {
    "id": 1,
    "name": "Northwind Studio",
    "email": "it@northwind.example",
    "external_id": "CRM-1042",
    "notes": "",
    "created_at": WHEN,
    "updated_at": WHEN,
}
LICENSE = {
    "id": 12,
    "key": KEY,
    "product": 1,
    "plan": 2,
    "customer": 1,
    "user": None,
    "status": "active",
    "starts_at": WHEN,
    "expires_at": None,
    "expired": False,
    "metadata": {"order": "SO-2291"},
    "created_at": WHEN,
    "updated_at": WHEN,
}
USER = {
    "id": 5,
    "username": "dana",
    "email": "dana@northwind.example",
    "first_name": "Dana",
    "last_name": "Kim",
    "is_active": True,
    "is_staff": False,
    "date_joined": WHEN,
    "last_login": None,
    "licensing_groups": [3],
}
GROUP = {
    "id": 3,
    "name": "Design team",
    "description": "Photon seats for the design team.",
    "max_licenses_per_member": 1,
    "members": [5],
    "created_at": WHEN,
    "updated_at": WHEN,
}
MACHINE = {
    "id": 40,
    "license": 12,
    "fingerprint": "3f9a1c0e7b2d4f6a8c1e3b5d7f9a0c2e",
    "name": "Dana's laptop",
    "platform": "macos",
    "hostname": "dana-mbp",
    "metadata": {},
    "status": "active",
    "activated_at": WHEN,
    "last_heartbeat_at": None,
    "heartbeat_deadline": None,
    "dies_at": None,
    "heartbeat": False,
    "dead_at": None,
    "deactivated_at": None,
    "deactivation_reason": "",
}
USER_TOKEN = {
    "id": 7,
    "name": "CI deploys",
    "owner": {"id": 5, "username": "dana"},
    "permissions": ["view_licenses", "edit_licenses"],
    "expires_at": "2027-03-02T09:30:00Z",
    "allowed_ips": ["203.0.113.0/24"],
    "is_active": True,
    "last_four": "9c1e",
    "created_at": WHEN,
    "refreshed_at": None,
    "last_used_at": WHEN,
    "last_used_ip": "203.0.113.7",
}
# An activated machine as the token-free machine endpoints answer it (signed: tenant, ts).
ACTIVATED = {
    **{
        name: value
        for name, value in MACHINE.items()
        if name not in {"license", "dead_at", "deactivated_at", "deactivation_reason"}
    },
    "tenant": "acme",
    "ts": WHEN,
}
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
VALIDATED = {
    "valid": True,
    "code": "VALID",
    "detail": "The licence is valid.",
    "license": {
        "status": "active",
        "product": "photon",
        "plan": "perpetual",
        "starts_at": WHEN,
        "expires_at": None,
        "entitlements": ["export-png", "export-svg", "batch-export", "plugins"],
        "max_activations": 3,
        "activations": {"used": 1, "max": 3},
    },
    "tenant": "acme",
    "ts": WHEN,
}
TOKEN_PAIR = {
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl9pZCI6N30.c2lnbmF0dXJl",
    "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJqdGkiOiI0MiJ9.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 86400,
    "permissions": ["view_licenses", "edit_licenses"],
}

# Resource collections: path -> (noun, plural, what it is, example object, create, change).
RESOURCES = {
    "/v1/products": (
        "product",
        "products",
        "A product is what you license (an application); each has plans.",
        PRODUCT,
        {"code": "photon", "name": "Photon Editor", "description": "A photo editor for desktop."},
        {"name": "Photon Editor 2"},
    ),
    "/v1/plans": (
        "plan",
        "plans",
        "A plan of a product sets a licence's duration, machine limits and entitlements.",
        PLAN,
        {"product": 1, "code": "perpetual", "name": "Perpetual", "duration_days": None},
        {"max_activations": 5},
    ),
    "/v1/customers": (
        "customer",
        "customers",
        "A customer holds licences; customers are kept in the admin (read-only here).",
        CUSTOMER,
        None,
        None,
    ),
    "/v1/licenses": (
        "licence",
        "licences",
        "A licence of a product's plan, identified by its key (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`).",
        LICENSE,
        {"product": 1, "plan": 2, "customer": 1, "metadata": {"order": "SO-2291"}},
        {"status": "suspended"},
    ),
    "/v1/machines": (
        "machine",
        "machines",
        "A machine is a licence's activation on one computer (its fingerprint).",
        MACHINE,
        None,
        None,
    ),
    "/v1/users": (
        "user",
        "users",
        "The tenant's users: licence holders and members of groups.",
        USER,
        {"username": "dana", "email": "dana@northwind.example", "first_name": "Dana"},
        {"last_name": "Kim-Lee"},
    ),
    "/v1/groups": (
        "group",
        "groups",
        "A group of users sharing licence settings, such as a per-member licence limit.",
        GROUP,
        {"name": "Design team", "max_licenses_per_member": 1},
        {"members": [5, 6]},
    ),
    "/v1/user-tokens": (
        "User Token",
        "User Tokens",
        "User Tokens are the API's credentials; they are made in the admin, never over the API, "
        "and their secret is never shown here.",
        USER_TOKEN,
        None,
        None,
    ),
    "/v1/webhooks": (
        "webhook endpoint",
        "webhook endpoints",
        "A webhook endpoint receives the tenant's events, signed with its secret "
        "(docs/webhooks.md); the secret is in the create answer only.",
        WEBHOOK,
        {
            "url": "https://hooks.northwind.example/licensing",
            "events": ["license.created", "license.updated"],
        },
        {"active": False},
    ),
    "/v1/webhook-deliveries": (
        "webhook delivery",
        "webhook deliveries",
        "Each delivery is one event sent to one endpoint: how many attempts it took, the last "
        "HTTP status and an excerpt of the answer, and when it is retried next.",
        DELIVERY,
        None,
        None,
    ),
}

# What a create answer shows beyond the object: a webhook endpoint's signing secret, once.
CREATED_EXTRA = {"/v1/webhooks": {"secret": "whsec_si4sPIVUcsocyNHosa5DlJv3K04m8KvLZI+8yEHWWkY="}}

AUTH_ERRORS = "401 without a valid access token, 403 `Access denied` without the permission"


def page(path: str, item: dict) -> dict:
    return {"next": f"{TENANT_URL}{path}?cursor={CURSOR}", "previous": None, "results": [item]}


def resource_texts(path: str, method: str, detail: bool) -> dict | None:
    """Summary, description and examples of a list/detail operation of RESOURCES."""
    if path not in RESOURCES:
        return None
    noun, plural, about, item, create, change = RESOURCES[path]
    if method == "get" and not detail:
        return {
            "summary": f"List {plural}",
            "description": f"One page of the tenant's {plural}, oldest first (by `id`), with the "
            f"filters below. {about} Follow the `next` URL, which carries a cursor, for the next page; `limit` sets the page "
            f"size (at most 500). Errors: 400 for a bad filter or `limit`, 404 for an unknown or "
            f"expired cursor, {AUTH_ERRORS}.",
            "response": page(path, item),
        }
    if method == "get":
        return {
            "summary": f"Get a {noun}",
            "description": f"One {noun} by its `id`. {about} Errors: 404 if no such {noun} "
            f"exists in this tenant, {AUTH_ERRORS}.",
            "response": item,
        }
    if method == "post":
        return {
            "summary": f"Create a {noun}",
            "description": f"Creates a {noun} and answers 201 with it. {about} Errors: 400 with "
            f"the failing fields in `details`, also for a repeated unique value or an unknown "
            f"related id; {AUTH_ERRORS}.",
            "request": create,
            "response": {**item, **CREATED_EXTRA.get(path, {})},
        }
    if method == "patch":
        return {
            "summary": f"Change a {noun}",
            "description": f"Changes only the fields sent and answers the whole {noun}. {about} "
            f"Errors: 400 with the failing fields in `details`, 404 if no such {noun}, "
            f"{AUTH_ERRORS}.",
            "request": change,
            "response": {**item, **change},
        }
    if method == "delete":
        effect = "Deactivates the machine (its slot is freed at once" if noun == "machine" else ""
        effect = (
            f"{effect}; not counted against the licence's churn budget) and answers 204."
            if effect
            else f"Deletes the {noun} and answers 204 without a body."
        )
        return {
            "summary": f"{'Deactivate' if noun == 'machine' else 'Delete'} a {noun}",
            "description": f"{effect} {about} Errors: 404 if no such {noun}, {AUTH_ERRORS}.",
        }
    return None


# The other operations: (method, path) -> texts and examples.
OPERATIONS = {
    ("post", "/v1/auth/token"): {
        "summary": "Exchange a User Token for access",
        "description": "Trades a User Token's secret (from the admin) for an access token "
        "(24 hours) and a refresh token (30 days). Send the access token as `Authorization: "
        "Bearer <access token>`. Errors: 401 `Invalid token` for an unknown, expired or "
        "deactivated User Token or a request from outside its allowed networks; 429 after too "
        "many failed attempts from one address.",
        "request": {"user_token": "1c9e4f2a-7b3d-4c8e-9a1f-5d6e7f8a9b0c"},
        "response": TOKEN_PAIR,
    },
    ("post", "/v1/auth/refresh"): {
        "summary": "Refresh an access token",
        "description": "Spends a refresh token for a new access and refresh token pair; the old "
        "refresh token stops working. Errors: 401 `Invalid token` for a spent, expired or "
        "malformed refresh token; 429 after too many failed attempts.",
        "request": {"refresh_token": TOKEN_PAIR["refresh_token"]},
        "response": TOKEN_PAIR,
    },
    ("get", "/v1/auth/me"): {
        "summary": "Show the calling token",
        "description": "The access token's User Token (id, name), its permissions and the "
        "tenant's request allowance for the current period. Errors: 401 without a valid access "
        "token.",
        "response": {
            "id": 7,
            "name": "CI deploys",
            "permissions": ["view_licenses", "edit_licenses"],
            "expires_at": "2027-03-02T09:30:00Z",
            "owner": {"id": 5, "username": "dana"},
            "tenant": "acme",
            "rate_limit": {"limit": 100000, "period": "day", "remaining": 99412},
        },
    },
    ("post", "/v1/licenses/validate"): {
        "summary": "Validate a licence key",
        "description": "For client applications, without a token: is this key valid (for this "
        "product)? The answer is always 200 with `valid` and a `code` saying why (e.g. `VALID`, "
        "`EXPIRED`, `SUSPENDED`, `NOT_FOUND`); it is signed (`Signature` headers, keys at "
        "`GET /v1/signing-keys`). Errors: 400 for a malformed body, 429 after too many unknown "
        "keys from one address.",
        "request": {"key": KEY, "product": "photon"},
        "response": VALIDATED,
    },
    ("post", "/v1/licenses/activate"): {
        "summary": "Activate a machine",
        "description": "For client applications, without a token: binds a valid licence to "
        "this machine's fingerprint. 201 with the new machine, 200 with it if it was active "
        "already, or 200 with the licence check (`valid: false`, `code`) that refused it. The "
        "answer is signed. Errors: 409 `Activation limit reached` when the plan's "
        "`max_activations` machines are active; 400 for a malformed body; 429 for guessing.",
        "request": {
            "key": KEY,
            "fingerprint": MACHINE["fingerprint"],
            "name": "Dana's laptop",
            "platform": "macos",
            "hostname": "dana-mbp",
        },
        "response": ACTIVATED,
    },
    ("post", "/v1/licenses/heartbeat"): {
        "summary": "Send a machine's heartbeat",
        "description": "For client applications, without a token: an activated machine says it "
        "is still running; the answer (signed) has its next `heartbeat_deadline`, or the licence "
        "check that refused it. Errors: 409 when a dead machine cannot come back because the "
        "licence's machines are all taken; 400 for a malformed body; 429 for guessing.",
        "request": {"key": KEY, "fingerprint": MACHINE["fingerprint"]},
        "response": {**ACTIVATED, "heartbeat": True, "heartbeat_deadline": "2026-12-02T10:30:00Z"},
    },
    ("post", "/v1/licenses/deactivate"): {
        "summary": "Deactivate a machine",
        "description": "For client applications, without a token: frees this machine's slot on "
        "the licence; 204 without a body. Errors: 404 if the key is unknown or the fingerprint "
        "not active on it; 409 `Deactivation limit reached` when the plan's churn budget for 30 "
        "days is used (`Retry-After` says when); 429 for guessing.",
        "request": {"key": KEY, "fingerprint": MACHINE["fingerprint"]},
    },
    ("post", "/v1/licenses/checkout"): {
        "summary": "Check out an offline licence file",
        "description": "For client applications, without a token: a signed licence file "
        "(optionally encrypted for the machine) for use without network, valid until its `expires` time "
        "(docs/offline.md). `license_file` is null unless the licence is valid. Errors: 400 for "
        "a malformed body, 429 for guessing.",
        "request": {"key": KEY, "fingerprint": MACHINE["fingerprint"]},
        "response": {
            **VALIDATED,
            "license_file": "-----BEGIN LICENSE FILE-----\neyJsaWNlbnNlIjp7fX0=\n"
            "-----END LICENSE FILE-----\n",
            "expires": "2026-12-09T09:30:00Z",
        },
    },
    ("get", "/v1/licenses/revocations"): {
        "summary": "List revoked licences",
        "description": "For offline clients, without a token: the licences revoked or suspended "
        "within the last 365 days, by the SHA-256 of their key, so a licence file of theirs can "
        "be withdrawn. Paginated by cursor; the answer is signed. Errors: 404 for an unknown "
        "cursor.",
        "response": {
            "results": [
                {
                    "license_key_hash": "9f2c4b1e8d7a6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b",
                    "epoch": 2,
                }
            ],
            "next": f"{TENANT_URL}/v1/licenses/revocations?cursor={CURSOR}",
            "previous": None,
            "tenant": "acme",
            "ts": WHEN,
        },
    },
    ("get", "/v1/signing-keys"): {
        "summary": "Get the signing keys",
        "description": "Without a token: the tenant's Ed25519 public keys (a JWKS, current key "
        "first) that verify the signed answers and licence files. A `retiring` key still "
        "verifies answers signed before the rotation. Errors: 403 `Invalid license` when the "
        "tenant's platform licence has expired, 429 when its request limit is used up.",
        "response": {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "kid": "acme-2026-12",
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                    "status": "current",
                }
            ]
        },
    },
    ("post", "/v1/user-tokens/{id}/refresh"): {
        "summary": "Refresh a User Token's secret",
        "description": "Replaces the User Token's secret; the new one (`user_token`) is shown in "
        "this answer only, and the old one stops working at once. Errors: 404 if no such token, "
        f"{AUTH_ERRORS}.",
        "response": {**USER_TOKEN, "user_token": "0b8f6d2e-3c4a-4e7f-8a9b-1c2d3e4f5a6b"},
    },
}


def texts_for(method: str, path: str) -> dict | None:
    if (method, path) in OPERATIONS:
        return OPERATIONS[(method, path)]
    collection = path.removesuffix("/{id}")
    return resource_texts(collection, method, detail=collection != path)
