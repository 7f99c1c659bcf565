from django.conf import settings

from monitoring import events
from monitoring.audit import audit_tokens
from tenants.management.base import TenantCommand, day_count
from tokens.management.output import table, to_json, when


class Command(TenantCommand):
    help = (
        "The quarterly review: every User Token of the tenant with its owner, permissions, the "
        "permissions it has not exercised lately, last use, days since refresh, expiry and flags."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument(
            "--unused-days",
            type=day_count,
            default=90,
            help="A permission not exercised for this many days counts as unused (default 90).",
        )
        parser.add_argument(
            "--refresh-days",
            type=day_count,
            default=None,
            help="Flag secrets older than this many days as refresh_overdue "
            f"(default TOKEN_REFRESH_MAX_AGE_DAYS, {settings.TOKEN_REFRESH_MAX_AGE_DAYS}).",
        )

    def handle_tenant(self, tenant, options):
        events.catch_up()  # pending usage counts first, so "last used" is current
        audits = audit_tokens(
            unused_days=options["unused_days"], refresh_days=options["refresh_days"]
        )
        if options["format"] == "json":
            self.stdout.write(
                to_json(
                    {
                        "tenant": tenant.schema_name,
                        "unused_days": options["unused_days"],
                        "tokens": [a.as_dict() for a in audits],
                    }
                )
            )
            return
        self.stdout.write(
            f"User Tokens of {tenant.schema_name!r}: {len(audits)}. Unused permissions: not "
            f"exercised in the last {options['unused_days']} days."
        )
        rows = [
            [
                a.token.pk,
                a.token.name,
                a.owner,
                "yes" if a.token.is_active else "no",
                when(a.token.last_used_at),
                f"{a.days_since_refresh}d",
                when(a.token.expires_at),
                ",".join(a.permissions) or "-",
                ",".join(a.unused_permissions) or "-",
                ",".join(a.flags) or "-",
            ]
            for a in audits
        ]
        headers = [
            "ID",
            "NAME",
            "OWNER",
            "ACTIVE",
            "LAST USED",
            "SINCE REFRESH",
            "EXPIRES",
            "PERMISSIONS",
            "UNUSED PERMISSIONS",
            "FLAGS",
        ]
        self.stdout.write(table(headers, rows, empty="(no User Tokens)"))
