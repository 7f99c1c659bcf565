"""Shared pieces of the operator commands."""

import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_public_schema_name, tenant_context

from tenants.models import Tenant

MAX_ID = 2**63 - 1  # what a database id (bigint) holds
MAX_DAYS = 100 * 366  # a century: further back or ahead no date computation needs to go
# How a printed hint names a command to run: with the project's virtualenv (README, Start here).
MANAGE_PY = ".venv/bin/python manage.py"


def positive_int(value: str, maximum: int = MAX_ID) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    if number > maximum:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} must be at most {maximum}")
    return number


def day_count(value: str) -> int:
    """A number of days for a command option: 1 to MAX_DAYS."""
    return positive_int(value, MAX_DAYS)


def validation_message(exc: ValidationError) -> str:
    return " ".join(exc.messages)


class TenantCommand(BaseCommand):
    """A command about one tenant, named with `--tenant SCHEMA`; `handle_tenant` runs in its schema."""

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", required=True, metavar="SCHEMA", help="The tenant's schema name."
        )

    def get_tenant(self, schema_name: str) -> Tenant:
        if schema_name == get_public_schema_name():
            raise CommandError("The public schema is not a tenant; name a tenant's schema.")
        tenant = Tenant.objects.filter(schema_name=schema_name).first()
        if tenant is None:
            known = ", ".join(
                Tenant.objects.exclude(schema_name=get_public_schema_name()).values_list(
                    "schema_name", flat=True
                )
            )
            raise CommandError(f"No tenant {schema_name!r}. Known tenants: {known or 'none'}.")
        return tenant

    def handle(self, *args, **options):
        tenant = self.get_tenant(options["tenant"])
        with tenant_context(tenant):
            try:
                return self.handle_tenant(tenant, options)
            except ValidationError as exc:
                raise CommandError(validation_message(exc)) from None

    def handle_tenant(self, tenant: Tenant, options: dict):
        raise NotImplementedError


class EachTenantCommand(BaseCommand):
    """A command run in one tenant (`--tenant SCHEMA`) or in every one (`--all-tenants`), for
    schedules; `handle_tenant` runs in each schema and returns its line of output. One failing
    tenant does not stop the others; the command then exits non-zero."""

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--tenant", metavar="SCHEMA", help="One tenant's schema name.")
        which.add_argument("--all-tenants", action="store_true", help="Every tenant.")

    def handle(self, *args, **options):
        if options["all_tenants"]:
            tenants = list(Tenant.objects.exclude(schema_name=get_public_schema_name()))
        else:
            tenants = [TenantCommand().get_tenant(options["tenant"])]
        failed = []
        for tenant in tenants:
            with tenant_context(tenant):
                try:
                    line = self.handle_tenant(tenant, options)
                except Exception as exc:  # one broken tenant must not stop the others
                    failed.append(tenant.schema_name)
                    self.stderr.write(f"{tenant.schema_name}: failed ({type(exc).__name__}: {exc})")
                    continue
            self.stdout.write(f"{tenant.schema_name}: {line}")
        if failed:
            raise CommandError(f"Failed for: {', '.join(failed)}")

    def handle_tenant(self, tenant: Tenant, options: dict) -> str:
        raise NotImplementedError
