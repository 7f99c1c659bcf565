from pathlib import Path

from django.core.management.base import CommandError

from licensing import offline
from tenants.management.base import TenantCommand, positive_int


class Command(TenantCommand):
    help = (
        "Check out an offline licence file (as POST /v1/licenses/checkout does) and print it, "
        "or write it to --output."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--key", required=True, help="The licence key.")
        parser.add_argument("--fingerprint", help="Bind the file to this activated machine.")
        parser.add_argument(
            "--ttl",
            type=positive_int,
            metavar="SECONDS",
            help="How long the file is valid: 3600 to 31536000 (default 7 days).",
        )
        parser.add_argument(
            "--encrypt", action="store_true", help="Encrypt the payload with the licence key."
        )
        parser.add_argument("--output", type=Path, help="Write the file here instead of stdout.")

    def handle_tenant(self, tenant, options):
        checkout = offline.check_out_license(
            options["key"],
            tenant=tenant,
            fingerprint=options["fingerprint"],
            ttl_seconds=options["ttl"],
            encrypt=options["encrypt"],
        )
        if not checkout.valid:
            raise CommandError(f"No licence file: {checkout.code.value} ({checkout.code.label})")
        if options["output"] is None:
            self.stdout.write(checkout.license_file, ending="")
            return
        try:
            options["output"].write_text(checkout.license_file)
        except OSError as error:
            raise CommandError(f"Cannot write {options['output']}: {error.strerror}") from None
        self.stderr.write(
            f"Licence file valid until {offline.iso(checkout.expires)} written to {options['output']}."
        )
