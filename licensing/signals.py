"""Happenings of the licensing domain, for monitoring to record (the senders know nothing of it).

Sent with `request` (may be None outside HTTP) and never with a licence key.
"""

from django.dispatch import Signal

# an activation, revival or client deactivation was refused: license, reason
# ("activation_limit" | "deactivation_limit"), fingerprint
activation_refused = Signal()
