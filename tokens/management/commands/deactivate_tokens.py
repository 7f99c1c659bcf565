from django.utils import timezone

from tenants.management.base import TenantCommand, day_count
from tokens import services
from tokens.management.output import table, when


class Command(TenantCommand):
    help = (
        "Deactivate every active User Token not used for N days (a token never used counts from "
        "its creation). --dry-run lists them and changes nothing."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--unused-days", type=day_count, required=True, metavar="N")
        parser.add_argument("--dry-run", action="store_true", help="List, change nothing.")

    def handle_tenant(self, tenant, options):
        now = timezone.now()
        days = options["unused_days"]
        stale = list(services.stale_tokens(days, now))
        rows = [
            [
                t.pk,
                t.name,
                t.owner.get_username(),
                when(t.last_used_at, empty=f"never (created {when(t.created_at)})"),
                f"{(now - (t.last_used_at or t.created_at)).days}d",
            ]
            for t in stale
        ]
        self.stdout.write(table(["ID", "NAME", "OWNER", "LAST USED", "IDLE"], rows, empty="(none)"))
        if options["dry_run"]:
            self.stdout.write(
                f"Dry run: {len(stale)} User Token(s) of {tenant.schema_name!r} unused for "
                f"{days} days would be deactivated. Nothing was changed."
            )
            return
        for token in stale:
            services.deactivate_user_token(token, via="command")
        self.stdout.write(
            self.style.SUCCESS(
                f"Deactivated {len(stale)} User Token(s) of {tenant.schema_name!r} unused for {days} days."
            )
        )
