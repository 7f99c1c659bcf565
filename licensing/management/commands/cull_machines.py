from licensing import services
from tenants.management.base import MANAGE_PY, EachTenantCommand


class Command(EachTenantCommand):
    help = (
        "Mark the machines that missed their heartbeat by the grace period as dead (idempotent). "
        "Death takes effect without it (limits and validation read each machine's deadline); the "
        f"mark records when. Schedule it every minute: {MANAGE_PY} cull_machines --all-tenants"
    )

    def handle_tenant(self, tenant, options) -> str:
        culled = services.cull_dead_machines()
        return f"{culled} machine{'s' if culled != 1 else ''} marked dead."
