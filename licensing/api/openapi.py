"""The licensing API's OpenAPI description, next to its views (licensing/api/views.py): each
operation's texts and examples, and the bodies of the views that answer without a serializer.
Generic parts (permission notes, error bodies, filters) come from api.openapi."""

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_view, inline_serializer
from rest_framework import serializers

from api.openapi_texts import CURSOR, TENANT_URL, WHEN, documented, resource
from licensing.api.serializers import (
    ActivatedMachineSerializer,
    ActivationRequestSerializer,
    CheckoutRequestSerializer,
    LicenseKeyRequestSerializer,
    ValidatedLicenseSerializer,
    ValidationRequestSerializer,
)
from licensing.models import ValidationCode
from tenants.models import SigningKeyStatus

KEY = "7K3QH-M2X9P-4RTVW-8CJ6N-YB5DZ"

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

# --- Resources

products = resource(
    "/v1/products",
    "product",
    "products",
    "A product is what you license (an application); each has plans.",
    PRODUCT,
    create={
        "code": "photon",
        "name": "Photon Editor",
        "description": "A photo editor for desktop.",
    },
    change={"name": "Photon Editor 2"},
)
plans = resource(
    "/v1/plans",
    "plan",
    "plans",
    "A plan of a product sets a licence's duration, machine limits and entitlements.",
    PLAN,
    create={"product": 1, "code": "perpetual", "name": "Perpetual", "duration_days": None},
    change={"max_activations": 5},
)
customers = resource(
    "/v1/customers",
    "customer",
    "customers",
    "A customer holds licences; customers are kept in the admin (read-only here).",
    CUSTOMER,
)
licenses = resource(
    "/v1/licenses",
    "licence",
    "licences",
    "A licence of a product's plan, identified by its key (`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`).",
    LICENSE,
    create={"product": 1, "plan": 2, "customer": 1, "metadata": {"order": "SO-2291"}},
    change={"status": "suspended"},
)
machines = resource(
    "/v1/machines",
    "machine",
    "machines",
    "A machine is a licence's activation on one computer (its fingerprint).",
    MACHINE,
)
users = resource(
    "/v1/users",
    "user",
    "users",
    "The tenant's users: licence holders and members of groups.",
    USER,
    create={"username": "dana", "email": "dana@northwind.example", "first_name": "Dana"},
    change={"last_name": "Kim-Lee"},
)
groups = resource(
    "/v1/groups",
    "group",
    "groups",
    "A group of users sharing licence settings, such as a per-member licence limit.",
    GROUP,
    create={"name": "Design team", "max_licenses_per_member": 1},
    change={"members": [5, 6]},
)

# --- Bodies of the client applications' endpoints, which answer without a serializer

# What a signed success answer adds to its body (tenants.http_signatures.SignedAnswers).
FRESHNESS_FIELDS = {
    "tenant": serializers.CharField(help_text="The tenant (schema name) that answered."),
    "ts": serializers.DateTimeField(help_text="The server time of the answer (UTC)."),
    "nonce": serializers.CharField(
        required=False, help_text="The request's nonce, if it sent one."
    ),
}


def validation_fields() -> dict:
    return {
        "valid": serializers.BooleanField(),
        "code": serializers.ChoiceField(choices=ValidationCode.choices),
        "detail": serializers.CharField(),
        "license": ValidatedLicenseSerializer(allow_null=True),
    }


# The answer of a licence check: validation, or an activation or heartbeat it refused.
LICENSE_CHECK = inline_serializer("LicenseValidation", {**validation_fields(), **FRESHNESS_FIELDS})


# An activated machine as a signed answer carries it: with `tenant`, `ts` and `nonce` (no
# docstring: it would become the component's description).
class SignedMachineSerializer(ActivatedMachineSerializer):
    tenant = FRESHNESS_FIELDS["tenant"]
    ts = FRESHNESS_FIELDS["ts"]
    nonce = FRESHNESS_FIELDS["nonce"]

    class Meta(ActivatedMachineSerializer.Meta):
        fields = (*ActivatedMachineSerializer.Meta.fields, "tenant", "ts", "nonce")


MACHINE_OR_REFUSAL = PolymorphicProxySerializer(
    component_name="MachineOrLicenseRefusal",
    serializers=[SignedMachineSerializer, LICENSE_CHECK],
    resource_type_field_name=None,
    help_text="The machine, or (with `code`) the licence check that refused the request.",
)

CHECKOUT = inline_serializer(
    "LicenseCheckout",
    {
        **validation_fields(),
        "license_file": serializers.CharField(
            allow_null=True,
            help_text="The licence file (`-----BEGIN LICENSE FILE-----` ...); null "
            "unless the licence is valid. Format: docs/offline.md.",
        ),
        "expires": serializers.DateTimeField(
            allow_null=True, help_text="When the licence file stops being valid."
        ),
        **FRESHNESS_FIELDS,
    },
)

SIGNING_KEYS = inline_serializer(
    "SigningKeySet",
    {
        "keys": inline_serializer(
            "SigningKey",
            many=True,
            fields={
                "kty": serializers.ChoiceField(choices=["OKP"]),
                "crv": serializers.ChoiceField(choices=["Ed25519"]),
                "kid": serializers.CharField(),
                "x": serializers.CharField(help_text="The public key, base64url (RFC 8037)."),
                "status": serializers.ChoiceField(
                    choices=[SigningKeyStatus.CURRENT.value, SigningKeyStatus.RETIRING.value]
                ),
            },
        )
    },
)

REVOCATION_PAGE = inline_serializer(
    "RevocationPage",
    {
        "results": inline_serializer(
            "Revocation",
            many=True,
            fields={
                "license_key_hash": serializers.CharField(
                    help_text="Lowercase hex SHA-256 of the normalised licence key "
                    "(`XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`, upper case)."
                ),
                "epoch": serializers.IntegerField(
                    help_text="Licence files of this licence with a lower epoch are withdrawn."
                ),
            },
        ),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        **{name: field for name, field in FRESHNESS_FIELDS.items() if name != "nonce"},
    },
)

# --- The client applications' endpoints

validation = extend_schema_view(
    post=documented(
        "Validate a licence key",
        "For client applications, without a token: is this key valid (for this product)? The "
        "answer is always 200 with `valid` and a `code` saying why (e.g. `VALID`, `EXPIRED`, "
        "`SUSPENDED`, `NOT_FOUND`); it is signed (`Signature` headers, keys at "
        "`GET /v1/signing-keys`). Errors: 400 for a malformed body, 429 after too many unknown "
        "keys from one address.",
        request_example={"key": KEY, "product": "photon"},
        response_example=VALIDATED,
        request=ValidationRequestSerializer,
        responses={200: LICENSE_CHECK},
    )
)
activation = extend_schema_view(
    post=documented(
        "Activate a machine",
        "For client applications, without a token: binds a valid licence to this machine's "
        "fingerprint. 201 with the new machine, 200 with it if it was active already, or 200 "
        "with the licence check (`valid: false`, `code`) that refused it. The answer is signed. "
        "Errors: 409 `Activation limit reached` when the plan's `max_activations` machines are "
        "active; 400 for a malformed body; 429 for guessing.",
        request_example={
            "key": KEY,
            "fingerprint": MACHINE["fingerprint"],
            "name": "Dana's laptop",
            "platform": "macos",
            "hostname": "dana-mbp",
        },
        response_example=ACTIVATED,
        status=201,
        request=ActivationRequestSerializer,
        responses={201: SignedMachineSerializer, 200: MACHINE_OR_REFUSAL},
    )
)
heartbeat = extend_schema_view(
    post=documented(
        "Send a machine's heartbeat",
        "For client applications, without a token: an activated machine says it is still "
        "running; the answer (signed) has its next `heartbeat_deadline`, or the licence check "
        "that refused it. Errors: 409 when a dead machine cannot come back because the "
        "licence's machines are all taken; 400 for a malformed body; 429 for guessing.",
        request_example={"key": KEY, "fingerprint": MACHINE["fingerprint"]},
        response_example={
            **ACTIVATED,
            "heartbeat": True,
            "heartbeat_deadline": "2026-12-02T10:30:00Z",
        },
        request=LicenseKeyRequestSerializer,
        responses={200: MACHINE_OR_REFUSAL},
    )
)
deactivation = extend_schema_view(
    post=documented(
        "Deactivate a machine",
        "For client applications, without a token: frees this machine's slot on the licence; "
        "204 without a body. Errors: 404 if the key is unknown or the fingerprint not active on "
        "it; 409 `Deactivation limit reached` when the plan's churn budget for 30 days is used "
        "(`Retry-After` says when); 429 for guessing.",
        request_example={"key": KEY, "fingerprint": MACHINE["fingerprint"]},
        request=LicenseKeyRequestSerializer,
        responses={204: None},
    )
)
checkout = extend_schema_view(
    post=documented(
        "Check out an offline licence file",
        "For client applications, without a token: a signed licence file (optionally encrypted "
        "for the machine) for use without network, valid until its `expires` time "
        "(docs/offline.md). `license_file` is null unless the licence is valid. Errors: 400 for "
        "a malformed body, 429 for guessing.",
        request_example={"key": KEY, "fingerprint": MACHINE["fingerprint"]},
        response_example={
            **VALIDATED,
            "license_file": "-----BEGIN LICENSE FILE-----\neyJsaWNlbnNlIjp7fX0=\n"
            "-----END LICENSE FILE-----\n",
            "expires": "2026-12-09T09:30:00Z",
        },
        request=CheckoutRequestSerializer,
        responses={200: CHECKOUT},
    )
)
revocations = extend_schema_view(
    get=documented(
        "List revoked licences",
        "For offline clients, without a token: the licences revoked or suspended within the "
        "last 365 days, by the SHA-256 of their key, so a licence file of theirs can be "
        "withdrawn. Paginated by cursor; the answer is signed. Errors: 404 for an unknown "
        "cursor.",
        response_example={
            "results": [
                {
                    "license_key_hash": "9f2c4b1e8d7a6c5b4a3f2e1d0c9b8a7f"
                    "6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b",
                    "epoch": 2,
                }
            ],
            "next": f"{TENANT_URL}/v1/licenses/revocations?cursor={CURSOR}",
            "previous": None,
            "tenant": "acme",
            "ts": WHEN,
        },
        responses={200: REVOCATION_PAGE},
    )
)
signing_keys = extend_schema_view(
    get=documented(
        "Get the signing keys",
        "Without a token: the tenant's Ed25519 public keys (a JWKS, current key first) that "
        "verify the signed answers and licence files. A `retiring` key still verifies answers "
        "signed before the rotation. Errors: 403 `Invalid license` when the tenant's platform "
        "licence has expired, 429 when its request limit is used up.",
        response_example={
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
        responses={200: SIGNING_KEYS},
    )
)
