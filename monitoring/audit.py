"""The quarterly review of User Tokens: who owns each, what it may do, what it never does.

Read by `manage.py audit_tokens` and the admin's security dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.utils import timezone

from monitoring.models import TokenPermissionUsage
from tokens.catalogue import Permission
from tokens.models import UserToken

EXPIRING_SOON_DAYS = 14


class Flag(StrEnum):
    """What the review flags on a User Token (the values are printed and in the contract)."""

    NEVER_USED = "never_used"
    UNUSED_PERMISSIONS = "unused_permissions"
    REFRESH_OVERDUE = "refresh_overdue"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    INACTIVE = "inactive"


@dataclass
class TokenAudit:
    token: UserToken
    permissions: list[str]
    unused_permissions: list[str]
    permission_last_used: dict[str, datetime | None]
    days_since_refresh: int
    flags: list[str] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return self.token.owner.get_username()

    def as_dict(self) -> dict:
        token = self.token

        def iso(value):
            return value.isoformat() if value else None

        return {
            "id": token.pk,
            "name": token.name,
            "owner": self.owner,
            "owner_active": token.owner.is_active,
            "active": token.is_active,
            "last_four": token.last_four,
            "permissions": self.permissions,
            "unused_permissions": self.unused_permissions,
            "permission_last_used": {
                code: iso(when) for code, when in self.permission_last_used.items()
            },
            "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at),
            "last_used_ip": token.last_used_ip,
            "refreshed_at": iso(token.refreshed_at),
            "days_since_refresh": self.days_since_refresh,
            "expires_at": iso(token.expires_at),
            "flags": self.flags,
        }


def audit_tokens(
    *,
    unused_days: int = 90,
    refresh_days: int | None = None,
    now: datetime | None = None,
    tokens=None,
) -> list[TokenAudit]:
    """One TokenAudit per token of the current tenant (or of `tokens`), by id."""
    now = now or timezone.now()
    refresh_days = settings.TOKEN_REFRESH_MAX_AGE_DAYS if refresh_days is None else refresh_days
    since = now - timedelta(days=unused_days)
    if tokens is None:
        tokens = UserToken.objects.select_related("owner").order_by("pk")
    tokens = list(tokens)
    last_used: dict[int, dict[str, datetime]] = {}
    for row in TokenPermissionUsage.objects.filter(user_token__in=[t.pk for t in tokens]):
        last_used.setdefault(row.user_token_id, {})[row.permission] = row.last_used_at
    order = {code: n for n, code in enumerate(Permission.values)}

    audits = []
    for token in tokens:
        permissions = sorted(token.permissions, key=lambda code: order.get(code, len(order)))
        exercised = last_used.get(token.pk, {})
        unused = [
            code for code in permissions if not exercised.get(code) or exercised[code] < since
        ]
        days_since_refresh = (now - token.rotated_at).days
        flags = []
        if not token.is_active or not token.owner.is_active:
            flags.append(Flag.INACTIVE)
        else:
            if token.last_used_at is None:
                flags.append(Flag.NEVER_USED)
            if unused:
                flags.append(Flag.UNUSED_PERMISSIONS)
            if days_since_refresh > refresh_days:
                flags.append(Flag.REFRESH_OVERDUE)
            if token.is_expired_at(now):
                flags.append(Flag.EXPIRED)
            elif token.expires_at and token.expires_at - now < timedelta(days=EXPIRING_SOON_DAYS):
                flags.append(Flag.EXPIRING_SOON)
        audits.append(
            TokenAudit(
                token=token,
                permissions=permissions,
                unused_permissions=unused,
                permission_last_used={code: exercised.get(code) for code in permissions},
                days_since_refresh=days_since_refresh,
                flags=flags,
            )
        )
    return audits
