"""Sample products, plans, customers, licences and machines for the demo tenant (added once).

`load_sample_data` runs inside the tenant's schema (the `demo` command sees to that) and returns
lines to print, among them a token-less validation the user can paste.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from licensing import services
from licensing.models import Customer, License, LicenseStatus, Machine, Product

EXAMPLE_MARK = {"sample": "validation-example"}

PRODUCTS = [
    {
        "code": "photon",
        "name": "Photon Editor",
        "description": "A photo editor for desktop.",
        "plans": [
            {
                "code": "monthly",
                "name": "Monthly",
                "duration_days": 30,
                "max_activations": 2,
                "entitlements": ["export-png", "export-svg"],
            },
            {
                "code": "perpetual",
                "name": "Perpetual",
                "duration_days": None,
                "max_activations": 3,
                "entitlements": ["export-png", "export-svg", "batch-export", "plugins"],
            },
        ],
    },
    {
        "code": "nebula",
        "name": "Nebula Sync",
        "description": "File sync for teams.",
        "plans": [
            {
                "code": "trial",
                "name": "14-day trial",
                "duration_days": 14,
                "max_activations": 1,
                "entitlements": ["sync"],
            },
            {
                "code": "team-annual",
                "name": "Team, annual",
                "duration_days": 365,
                "max_activations": 10,
                "max_deactivations": 5,
                "heartbeat_seconds": 3600,
                "entitlements": ["sync", "sharing", "admin-console"],
            },
        ],
    },
]

CUSTOMERS = [
    {"name": "Acme Corporation", "email": "it@acme.example", "external_id": "CRM-1001"},
    {"name": "Globex Ltd", "email": "licensing@globex.example", "external_id": "CRM-1002"},
    {"name": "Initech", "email": "admin@initech.example", "external_id": "CRM-1003"},
]


def _create_all() -> None:
    now = timezone.now()
    plans = {}
    for spec in PRODUCTS:
        spec = dict(spec)
        plan_specs = spec.pop("plans")
        product = services.create_product(**spec)
        for plan_spec in plan_specs:
            plans[(product.code, plan_spec["code"])] = services.create_plan(
                product=product, **plan_spec
            )
    acme, globex, initech = (services.create_customer(**spec) for spec in CUSTOMERS)

    def issue(product_plan, customer, **fields):
        plan = plans[product_plan]
        return services.issue_license(product=plan.product, plan=plan, customer=customer, **fields)

    issue(("photon", "perpetual"), acme, metadata=EXAMPLE_MARK)
    issue(("photon", "monthly"), globex, metadata={"seats": 5})
    issue(("nebula", "team-annual"), initech, metadata={"seats": 25})
    issue(("nebula", "trial"), globex, status=LicenseStatus.SUSPENDED)
    issue(("photon", "monthly"), initech, starts_at=now - timedelta(days=60))  # expired
    issue(("nebula", "trial"), acme, status=LicenseStatus.REVOKED)


# (licence metadata that finds it, fingerprint, name, platform, hostname)
MACHINES = [
    (EXAMPLE_MARK, "demo-4c1f9e2a", "Design studio iMac", "macOS 15", "studio-imac"),
    ({"seats": 5}, "demo-77ab03d1", "Reception PC", "Windows 11", "globex-rcpt-01"),
    ({"seats": 25}, "demo-0f3e5c88", "Build server", "Ubuntu 24.04", "initech-build"),
    ({"seats": 25}, "demo-a9d2b471", "Milton's laptop", "Windows 11", "initech-lt-017"),
]


def _activate_machines() -> None:
    for mark, fingerprint, name, platform, hostname in MACHINES:
        license = License.objects.filter(metadata__contains=mark).order_by("id").first()
        if license is not None:
            services.activate_machine(
                license.key, fingerprint, name=name, platform=platform, hostname=hostname
            )


def load_sample_data(tenant, port: int = 8000) -> list[str]:
    """Add the sample data unless it is there already; return the lines to print (URLs on
    `port`, where the demo serves)."""
    with transaction.atomic():
        created = not Product.objects.filter(code=PRODUCTS[0]["code"]).exists()
        if created:
            _create_all()
        if not Machine.objects.exists():
            _activate_machines()

    domain = tenant.get_primary_domain()
    name = domain.domain if domain else "demo.localhost"
    curl = f"curl -s --resolve {name}:{port}:127.0.0.1"
    base = f"http://{name}:{port}"
    example = License.objects.filter(metadata__contains=EXAMPLE_MARK).order_by("id").first()
    lines = [
        ("Sample data added: " if created else "Sample data (already there): ")
        + f"{Product.objects.count()} products, {License.objects.count()} licences, "
        + f"{Customer.objects.count()} customers, {Machine.objects.count()} machines.",
    ]
    if example is not None:
        json_post = f"{curl} -H 'Content-Type: application/json'"
        machine = f'"key": "{example.key}", "fingerprint": "my-laptop"'
        lines += [
            "  Validate a licence key (no token needed):",
            f'    {json_post} -d \'{{"key": "{example.key}"}}\' {base}/v1/licenses/validate',
            "  Activate it on a machine, validate with its fingerprint, send a heartbeat, "
            "deactivate:",
            *(
                f"    {json_post} -d '{{{machine}}}' {base}/v1/licenses/{action}"
                for action in ("activate", "validate", "heartbeat", "deactivate")
            ),
        ]
    lines += [
        "  List licences with a token: add a User Token with 'View Licenses' at "
        f"{base}/admin/tokens/usertoken/add/, then:",
        f"    {curl} -H 'Content-Type: application/json' "
        f'-d \'{{"user_token": "<the token>"}}\' {base}/v1/auth/token',
        f"    {curl} -H 'Authorization: Bearer <access_token>' {base}/v1/licenses",
    ]
    return lines
