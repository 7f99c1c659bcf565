from django.core.management.base import CommandError

from tenants.management.base import MANAGE_PY, TenantCommand, positive_int
from tokens import services
from tokens.management.output import printable
from tokens.models import UserToken


class Command(TenantCommand):
    help = (
        "Incident response: replace a User Token's secret. Every access and refresh token issued "
        "from the old secret stops working at once. The new secret is printed once, alone on "
        "stdout (the explanation goes to stderr), and nowhere else."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "token_id", type=positive_int, metavar="ID", help="The User Token's id."
        )

    def handle_tenant(self, tenant, options):
        token = UserToken.objects.select_related("owner").filter(pk=options["token_id"]).first()
        if token is None:
            raise CommandError(
                f"No User Token {options['token_id']} in tenant {tenant.schema_name!r} "
                f"(see {MANAGE_PY} audit_tokens --tenant {tenant.schema_name})."
            )
        secret = services.refresh_user_token(token, via="command")
        self.stderr.write(
            f"User Token {token.pk} '{printable(token.name)}' (owner "
            f"{printable(token.owner.get_username())}) refreshed: "
            "every access and refresh token issued from its old secret is invalid from now on."
        )
        if not token.is_active:
            self.stderr.write(
                "Note: this token is deactivated; the new secret works only once it is activated again."
            )
        self.stderr.write("New secret (shown once; put it in the integration's secret store now):")
        self.stdout.write(secret)
