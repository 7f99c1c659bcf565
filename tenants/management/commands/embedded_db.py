from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded_postgres import ensure_server, stop_server


class Command(BaseCommand):
    help = "Start, stop or locate the embedded development PostgreSQL server (when DATABASE_URL is unset)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, **options):
        database = settings.DATABASES["default"]
        if "PGDATA" not in database:
            raise CommandError("DATABASE_URL is set: there is no embedded server to manage.")
        pgdata = Path(database["PGDATA"])
        action = options["action"]
        if action == "start":
            self.stdout.write(f"Embedded PostgreSQL running, socket in {ensure_server(pgdata)}")
        elif action == "stop":
            stopped = stop_server(pgdata)
            self.stdout.write("Stopped." if stopped else "It was not running.")
        else:
            running = (pgdata / "postmaster.pid").exists()
            self.stdout.write(f"{'running' if running else 'stopped'} ({pgdata})")
