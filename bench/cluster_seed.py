"""Data for the cluster tests, written straight to the cluster's primary (run in a subprocess
with the cluster's environment, since the test process's Django speaks to the test database).

    python -m bench.cluster_seed tenant NAME LIMIT   -> JSON: domain, token secrets, product, key
    python -m bench.cluster_seed validations SCHEMA  -> JSON: the schema's validation records

The records are counted after draining any buffer of them, with the first draining command of
DRAIN_COMMANDS that this code base has (validation records may be buffered and written by a job).
"""

import json
import secrets
import sys

import django

DRAIN_COMMANDS = ("drain_records",)
TOKEN_PERMISSIONS = ["view_products", "edit_products", "view_licenses"]


def tenant(name: str, limit: int) -> dict:
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    from licensing import services
    from tenants.services import AdminAccount, provision_tenant
    from tokens.services import create_user_token

    schema = f"{name}_{secrets.token_hex(4)}"
    domain = f"{schema.replace('_', '-')}.localhost"
    provision_tenant(
        schema_name=schema,
        name=f"Cluster {name}",
        domain=domain,
        admin=AdminAccount(f"{schema}-admin", f"admin@{domain}", secrets.token_urlsafe(16)),
        request_limit=limit,
        request_period="day",
    )
    with schema_context(schema):
        owner = get_user_model().objects.create_user(f"{schema}-integration")
        secrets_ = [
            create_user_token(owner=owner, name=f"cluster {i}", permissions=TOKEN_PERMISSIONS)[1]
            for i in range(2)
        ]
        product = services.create_product(code=f"{name}-app", name=f"{name} app")
        plan = services.create_plan(product=product, code="std", name="Standard")
        key = services.issue_license(product=product, plan=plan).key
    return {
        "schema": schema,
        "domain": domain,
        "secrets": secrets_,
        "product": product.code,
        "key": key,
    }


def validations(schema: str) -> dict:
    from django.core.management import call_command, get_commands
    from django_tenants.utils import schema_context

    from licensing.models import LicenseValidation

    available = get_commands()
    drained = next((name for name in DRAIN_COMMANDS if name in available), None)
    if drained:
        call_command(drained)
    with schema_context(schema):
        rows = list(LicenseValidation.objects.values_list("code", "client_address"))
    return {"drained_with": drained, "records": rows}


if __name__ == "__main__":
    django.setup()
    command, *args = sys.argv[1:]
    if command == "tenant":
        print(json.dumps(tenant(args[0], int(args[1]))))
    elif command == "validations":
        print(json.dumps(validations(args[0])))
    else:
        sys.exit(f"unknown command {command!r}")
