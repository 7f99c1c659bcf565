from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_public_schema_name, tenant_context

from tenants.management.base import TenantCommand
from tenants.models import Tenant
from tokens import monitoring


class Command(BaseCommand):
    help = (
        "Write pending usage counts (requests per day, last use of each permission) from the "
        "cache to the database, update folded event counts and record token expiries. Requests "
        "flush their own token about once a minute; schedule this every minute for the rest."
    )

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
                    done = monitoring.catch_up()
                except Exception as exc:  # one broken tenant must not stop the others
                    failed.append(tenant.schema_name)
                    self.stderr.write(f"{tenant.schema_name}: failed ({type(exc).__name__}: {exc})")
                    continue
            self.stdout.write(
                f"{tenant.schema_name}: {done['requests']} request(s) and {done['permissions']} "
                f"permission use(s) written, {done['folded_events']} folded event(s) updated, "
                f"{done['expiries']} expiry event(s) recorded, {done['records']} buffered "
                "record(s) written."
            )
        if failed:
            raise CommandError(f"Flushing failed for: {', '.join(failed)}")
