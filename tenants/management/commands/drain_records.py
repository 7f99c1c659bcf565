import time

from django.core.management.base import BaseCommand, CommandError

from tenants.management.base import TenantCommand, positive_int
from tenants.record_buffer import drain_buffered_records


class Command(BaseCommand):
    help = (
        "Write the buffered records (validation records, token-exchange events) to the database: "
        "one multi-row INSERT per tenant and table, idempotent. Run it every few seconds "
        "(--every 2 keeps running); with REDIS_URL the buffer is in Redis, else in each process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SCHEMA", help="Only this tenant (default: all).")
        parser.add_argument(
            "--every",
            type=positive_int,
            metavar="SECONDS",
            help="Keep running, draining every SECONDS seconds (stop with Ctrl-C or SIGTERM).",
        )

    def handle(self, *args, **options):
        schema = options["tenant"]
        if schema is not None:
            schema = TenantCommand().get_tenant(schema).schema_name
        while True:
            try:
                written = drain_buffered_records(schema)
            except Exception as exc:  # e.g. Redis or the database unreachable
                raise CommandError(f"Draining failed: {type(exc).__name__}: {exc}") from None
            if options["every"] is None or written:
                self.stdout.write(f"{written} buffered record(s) written.")
            if options["every"] is None:
                return
            time.sleep(options["every"])
