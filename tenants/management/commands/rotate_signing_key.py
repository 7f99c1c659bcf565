import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import CommandError

from tenants.management.base import TenantCommand
from tenants.signing_keys import DEFAULT_OVERLAP, published_keys, rotate_signing_key

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_overlap(value: str) -> timedelta:
    match = re.fullmatch(r"(\d{1,6})([smhd]?)", value.strip())
    if match is None:
        raise CommandError(f"Invalid --overlap {value!r}: e.g. 7d, 12h, 30m, 0 (withdraw at once).")
    number, unit = match.groups()
    return timedelta(**{UNITS[unit or "s"]: int(number)})


class Command(TenantCommand):
    help = (
        "Give a tenant a new current signing key; the one it replaces stays published as "
        "'retiring' for the overlap, so signatures and licence files made with it still verify."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--overlap",
            default=f"{DEFAULT_OVERLAP.days}d",
            help="How long the replaced key stays published: 7d (default), 12h, 30m, 0.",
        )

    def handle_tenant(self, tenant, options):
        overlap = parse_overlap(options["overlap"])
        key = rotate_signing_key(tenant, overlap)
        self.stdout.write(
            self.style.SUCCESS(f"New current signing key of {tenant.schema_name!r}: {key.kid}")
        )
        for published in published_keys(tenant)[1:]:
            self.stdout.write(
                f"  still published until {published.retires_at:%Y-%m-%d %H:%M}Z: {published.kid}"
            )
        self.stdout.write(
            f"Other workers sign with the new key within {settings.SIGNING_KEY_CACHE_SECONDS} s."
        )
