import getpass
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.management.base import positive_int, validation_message
from tenants.models import RequestPeriod
from tenants.services import AdminAccount, parse_expiry, provision_tenant, provisioning_problems

MAX_PORT = 65535


class Command(BaseCommand):
    help = (
        "Create a tenant: its schema, domain, first administrator and platform licence. "
        "The admin password comes from DJANGO_SUPERUSER_PASSWORD or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", required=True, metavar="SCHEMA", help="Schema name, e.g. acme."
        )
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Ltd'.")
        parser.add_argument("--domain", required=True, help="Host the tenant is served on.")
        parser.add_argument("--admin-username", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--request-limit", type=positive_int, default=1000)
        parser.add_argument(
            "--request-period", choices=RequestPeriod.values, default=RequestPeriod.MINUTE
        )
        parser.add_argument(
            "--expires", default=None, metavar="DATE", help="Licence end (YYYY-MM-DD) or 'never'."
        )
        parser.add_argument(
            "--port",
            type=lambda value: positive_int(value, MAX_PORT),
            default=None,
            help="The port the domain is served on, for the admin URL printed (e.g. 8000).",
        )

    def handle(self, *args, **options):
        problems = []
        expires_at = self.checked(problems, parse_expiry, options["expires"])
        password = self.checked(problems, self.admin_password, options)
        inputs = {
            "schema_name": options["tenant"],
            "name": options["name"],
            "domain": options["domain"],
            # No password yet (its problem is listed already): the others are still checked.
            "admin": AdminAccount(options["admin_username"], options["admin_email"], password),
            "request_limit": options["request_limit"],
            "request_period": options["request_period"],
        }
        problems += provisioning_problems(**inputs)
        if problems:
            raise CommandError(
                f"Cannot provision {options['tenant']!r}:\n"
                + "\n".join(f"- {problem}" for problem in problems)
            )
        try:
            tenant = provision_tenant(**inputs, expires_at=expires_at)
        except ValidationError as exc:  # e.g. the domain was taken in the meantime
            raise CommandError(validation_message(exc)) from None
        port = options["port"]
        host = options["domain"] if port in (None, 80) else f"{options['domain']}:{port}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant {tenant.schema_name!r} ready at http://{host}/admin/ "
                f"(admin {options['admin_username']!r})."
            )
        )

    @staticmethod
    def checked(problems: list[str], read, *args):
        """`read(*args)`, or None with its error's messages added to `problems`."""
        try:
            return read(*args)
        except ValidationError as exc:
            problems.extend(exc.messages)
        except CommandError as exc:
            problems.append(str(exc))
        return None

    def admin_password(self, options) -> str:
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if password:
            return password
        if not options.get("interactive", True) or not self._stdin_is_tty():
            raise CommandError(
                "Set DJANGO_SUPERUSER_PASSWORD, or run interactively to be asked for the password."
            )
        password = getpass.getpass(f"Password for {options['admin_username']}: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return password

    @staticmethod
    def _stdin_is_tty() -> bool:
        import sys

        return sys.stdin is not None and sys.stdin.isatty()
