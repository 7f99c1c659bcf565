from django.core.management.base import CommandError
from django.utils import timezone

from tenants.management.base import TenantCommand, positive_int
from tenants.models import RequestPeriod
from tenants.services import UNCHANGED, parse_expiry, set_tenant_licence


class Command(TenantCommand):
    help = "Change a tenant's platform licence: request limit, period and expiry."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--request-limit", type=positive_int)
        parser.add_argument("--request-period", choices=RequestPeriod.values)
        parser.add_argument(
            "--expires",
            metavar="DATE|never",
            help="Licence end (YYYY-MM-DD, ISO date-time) or 'never'.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Accept an --expires in the past (the tenant's API is refused from then on).",
        )

    def handle_tenant(self, tenant, options):
        expires = options["expires"]
        if (
            options["request_limit"] is None
            and options["request_period"] is None
            and expires is None
        ):
            raise CommandError(
                "Nothing to change: give --request-limit, --request-period or --expires."
            )
        expires_at = UNCHANGED if expires is None else parse_expiry(expires)
        in_the_past = expires_at not in (UNCHANGED, None) and expires_at <= timezone.now()
        if in_the_past and not options["force"]:
            raise CommandError(
                f"--expires {expires} is in the past: the tenant's API would be refused at once. "
                "Repeat with --force to do that."
            )
        tenant = set_tenant_licence(
            tenant,
            request_limit=options["request_limit"],
            request_period=options["request_period"],
            expires_at=expires_at,
        )
        expiry = tenant.expires_at.isoformat() if tenant.expires_at else "never"
        self.stdout.write(
            self.style.SUCCESS(
                f"Licence of {tenant.schema_name!r}: {tenant.request_limit} requests per "
                f"{tenant.request_period}, expires {expiry}."
            )
        )
