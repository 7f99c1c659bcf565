from monitoring import events
from tenants.management.base import EachTenantCommand


class Command(EachTenantCommand):
    help = (
        "Write pending usage counts (requests per day, last use of each permission) from the "
        "cache to the database, update folded event counts and record token expiries. Requests "
        "flush their own token about once a minute; schedule this every minute for the rest."
    )

    def handle_tenant(self, tenant, options) -> str:
        done = events.catch_up()
        return (
            f"{done['requests']} request(s) and {done['permissions']} permission use(s) written, "
            f"{done['folded_events']} folded event(s) updated, {done['expiries']} expiry event(s) "
            f"recorded, {done['records']} buffered record(s) written."
        )
