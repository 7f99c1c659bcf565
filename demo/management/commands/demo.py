import json
import secrets
import signal
import subprocess
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import tenant_context

from tenants.management.base import MANAGE_PY
from tenants.models import Tenant
from tenants.services import AdminAccount, ensure_public_tenant, provision_tenant

DEMO_SCHEMA = "demo"
DEMO_DOMAIN = "demo.localhost"
DEMO_ADMIN = "admin"


def ready_text(port: int, password: str) -> str:
    base = f"http://{DEMO_DOMAIN}:{port}"
    return (
        f"  Tenant admin:   {base}/admin/   user {DEMO_ADMIN!r}, password {password!r}\n"
        f"  REST API:       {base}/v1/\n"
        f"  Platform admin: http://{settings.PUBLIC_DOMAIN}:{port}/admin/ "
        f"(create an operator with: {MANAGE_PY} createsuperuser)\n"
    )


class Command(BaseCommand):
    help = (
        "Start a ready demo: prepare the database, provision the tenant 'demo' on demo.localhost "
        "with sample data, and serve the site with a background worker (webhooks, periodic jobs) "
        "and a local webhook receiver."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-serve", action="store_true", help="Prepare everything, then exit."
        )

    def handle(self, *args, **options):
        self.stdout.write("Preparing the database…")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        ensure_public_tenant()
        tenant, password = self.demo_tenant()
        self.load_sample_data(tenant, options["port"])

        port = options["port"]
        self.stdout.write(self.style.SUCCESS("\nThe demo is ready.\n") + ready_text(port, password))
        if not options["no_serve"]:
            self.serve(tenant, port)

    def serve(self, tenant: Tenant, port: int) -> None:
        """runserver, with a queue worker in the same process group (Ctrl-C stops both) and the
        demo webhook receiver on the next port."""
        receiver = self.start_webhook_receiver(tenant, port + 1)
        worker = subprocess.Popen(  # noqa: S603 (our own manage.py)
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "procrastinate", "worker"],
            cwd=settings.BASE_DIR,
        )
        self.stdout.write(f"Worker started (pid {worker.pid}): webhooks and periodic jobs.")
        # A SIGTERM to the demo stops the worker too (Ctrl-C reaches the whole process group).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
            if receiver is not None:
                receiver.shutdown()

    def start_webhook_receiver(self, tenant: Tenant, port: int):
        from webhooks import demo
        from webhooks.models import WebhookEndpoint

        if not settings.WEBHOOK_ALLOW_LOOPBACK:
            self.stdout.write("Demo webhook receiver off: WEBHOOK_ALLOW_LOOPBACK is off.")
            return None
        with tenant_context(tenant):
            endpoint = demo.demo_endpoint(port)

        def secrets():
            with tenant_context(tenant):
                return WebhookEndpoint.objects.get(pk=endpoint.pk).signing_secrets()

        server = demo.start_receiver(port, secrets, self.stdout.write)
        self.stdout.write(
            f"Demo webhook receiver on {endpoint.url}: change a licence, then see "
            f"http://{DEMO_DOMAIN}:{port - 1}/admin/webhooks/webhookdelivery/"
        )
        return server

    def demo_tenant(self) -> tuple[Tenant, str]:
        """The demo tenant and its admin password, kept in .data/ so re-runs print the same one."""
        credentials = settings.DATA_DIR / "demo-credentials.json"
        tenant = Tenant.objects.filter(schema_name=DEMO_SCHEMA).first()
        if tenant is not None and credentials.exists():
            return tenant, json.loads(credentials.read_text())["password"]

        password = secrets.token_urlsafe(12)
        if tenant is None:
            tenant = provision_tenant(
                schema_name=DEMO_SCHEMA,
                name="Demo Software Ltd",
                domain=DEMO_DOMAIN,
                admin=AdminAccount(DEMO_ADMIN, "admin@demo.localhost", password),
                request_limit=10000,
            )
        else:
            with tenant_context(tenant):
                admin = get_user_model().objects.get(username=DEMO_ADMIN)
                admin.set_password(password)
                admin.save(update_fields=["password"])
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        credentials.write_text(json.dumps({"username": DEMO_ADMIN, "password": password}))
        credentials.chmod(0o600)
        return tenant, password

    def load_sample_data(self, tenant: Tenant, port: int) -> None:
        """Sample products, plans, customers and licences, and a month of token activity for the
        security dashboard; each added once (licensing.sample_data, monitoring.demo_activity)."""
        from licensing.sample_data import load_sample_data
        from monitoring.demo_activity import seed_security_activity
        from tokens.models import UserToken

        with tenant_context(tenant):
            for line in load_sample_data(tenant, port=port):
                self.stdout.write(line)
            if not UserToken.objects.exists():
                owner, _ = get_user_model().objects.get_or_create(
                    username="integrations", defaults={"email": "integrations@demo.localhost"}
                )
                seed_security_activity(owner)
                self.stdout.write(
                    "Demo User Tokens and a month of activity added: see the security dashboard at "
                    f"http://{DEMO_DOMAIN}:{port}/admin/monitoring/securitydashboard/"
                )
