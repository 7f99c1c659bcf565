from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from monitoring.models import Alert, SecurityEvent, TokenUsageDay
from tenants.management.base import TenantCommand, day_count
from tokens import services


class Command(TenantCommand):
    help = (
        "Delete security events, acknowledged alerts and daily usage counts older than the "
        "retention (SECURITY_EVENT_RETENTION_DAYS), and spent refresh tokens that expired anyway."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--days",
            type=day_count,
            default=None,
            help="Keep this many days instead "
            f"(default SECURITY_EVENT_RETENTION_DAYS, {settings.SECURITY_EVENT_RETENTION_DAYS}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle_tenant(self, tenant, options):
        days = options["days"] or settings.SECURITY_EVENT_RETENTION_DAYS
        cutoff = timezone.now() - timedelta(days=days)
        old = {
            "security events": SecurityEvent.objects.filter(created_at__lt=cutoff),
            "acknowledged alerts": Alert.objects.filter(
                status=Alert.Status.ACKNOWLEDGED, created_at__lt=cutoff
            ),
            "daily usage rows": TokenUsageDay.objects.filter(day__lt=cutoff.date()),
        }
        if options["dry_run"]:
            counts = {label: qs.count() for label, qs in old.items()}
            summary = ", ".join(f"{n} {label}" for label, n in counts.items())
            self.stdout.write(
                f"Dry run for {tenant.schema_name!r}: would delete {summary} older than {days} days."
            )
            return
        counts = {label: qs.delete()[0] for label, qs in old.items()}
        counts["spent refresh tokens"] = services.prune_spent_refresh_tokens()
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Pruned {tenant.schema_name!r} (kept {days} days): {summary}.")
        )
