"""Rate-limit happenings, for monitoring to record (CONTRACT section 8).

Sent with `request` (the Django HttpRequest); never with a secret.
"""

from django.dispatch import Signal

# the tenant's licence limit refused a request: tenant, limit, period (seconds)
request_limit_reached = Signal()
# the per-address abuse throttle refused a request: scope, address
abuse_throttled = Signal()
# the tenant's platform licence has expired and a /v1/ request was refused: tenant
licence_refused = Signal()
