"""Security-relevant happenings, sent by the services and the API layer.

Monitoring (security events, alerts, usage) listens to these; the senders know nothing about it.
Every signal is sent with `request` (may be None outside HTTP) and never with a secret or a JWT.
"""

from django.dispatch import Signal

# token exchanged for an access/refresh pair: user_token
token_exchanged = Signal()
# access/refresh pair renewed with a refresh token: user_token
token_pair_refreshed = Signal()
# a spent refresh token was presented again (its User Token's JWTs are revoked): user_token, address
refresh_token_reused = Signal()
# authentication failed: reason (str), user_token_id (int|None), stage ("exchange"|"refresh"|"access")
authentication_failed = Signal()
# a valid token lacked a permission: user_token, missing (list of codes), method, path, and
# optionally reason (str, default "missing_permission") and target (id of the object refused)
permission_denied = Signal()
# User Token secret replaced (all its JWTs invalid): user_token, actor (User|None), via (str)
user_token_refreshed = Signal()
# User Token deactivated (its JWTs revoked too): user_token, actor, via
user_token_deactivated = Signal()
# User Token activated again: user_token, actor, via
user_token_activated = Signal()
# User Token permissions changed: user_token, actor, via, added (list), removed (list)
user_token_permissions_changed = Signal()
# a successfully authenticated API request: user_token, permissions_used (list of codes)
token_used = Signal()
# User Token's time-bounded access ended on purpose ("expire now"): user_token, actor, via
user_token_expired = Signal()
# (Rate-limit and expired-licence refusals are signalled by tenants.signals: request_limit_reached,
# abuse_throttled, licence_refused.)
