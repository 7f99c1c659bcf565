"""A month of believable token activity for a demo tenant: tokens, daily usage, permission use,
security events and alerts, so the security dashboard and the reports have something to show.

    from monitoring.demo_activity import seed_security_activity
    seed_security_activity(owner)          # in the tenant's schema

Deterministic for a given seed. Writes rows directly (no requests are made).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring.models import Alert, SecurityEvent, TokenPermissionUsage, TokenUsageDay
from tokens import services
from tokens.catalogue import PRESET_PERMISSIONS, Permission, Preset
from tokens.models import UserToken

Kind = SecurityEvent.Kind

TOKENS = [
    # name, permissions, permissions actually exercised, daily requests, days since last refresh
    ("CRM sync", PRESET_PERMISSIONS[Preset.READ_ONLY], [Permission.VIEW_USERS], 900, 20),
    (
        "Licence provisioning",
        PRESET_PERMISSIONS[Preset.LICENSE_PROVISIONING],
        [Permission.VIEW_LICENSES, Permission.EDIT_LICENSES, Permission.VIEW_CUSTOMERS],
        400,
        130,
    ),
    (
        "HR onboarding",
        PRESET_PERMISSIONS[Preset.USER_ONBOARDING],
        [Permission.VIEW_USERS, Permission.CREATE_USERS],
        60,
        45,
    ),
    ("Old reporting script", PRESET_PERMISSIONS[Preset.MONITORING], [], 0, 200),
]
ADDRESSES = ["203.0.113.7", "198.51.100.23", "192.0.2.41", "203.0.113.99"]
EXCHANGE_REASONS = ["unknown_token", "unknown_token", "token_expired", "token_inactive"]
ACCESS_REASONS = ["invalid_jwt", "revoked_by_refresh", "missing_credentials"]


@dataclass
class DemoActivity:
    tokens: list[UserToken]
    events: int
    alerts: int


def seed_security_activity(
    owner, *, now: datetime | None = None, days: int = 30, seed: int = 2026
) -> DemoActivity:
    """Create demo tokens owned by `owner` and a month of activity around them."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security relevant
    now = now or timezone.now()
    today = timezone.localdate(now)
    tokens = []
    events = []
    for name, permissions, exercised, daily, refreshed_days_ago in TOKENS:
        token, _ = services.create_user_token(owner=owner, name=name, permissions=permissions)
        rotated = now - timedelta(days=refreshed_days_ago)
        last_used = now - timedelta(minutes=rng.randint(1, 90)) if daily else None
        UserToken.objects.filter(pk=token.pk).update(
            created_at=rotated,
            last_used_at=last_used,
            last_used_ip=ADDRESSES[len(tokens)] if daily else None,
        )
        token.refresh_from_db()
        tokens.append(token)
        if daily:
            TokenUsageDay.objects.bulk_create(
                TokenUsageDay(
                    user_token=token,
                    day=today - timedelta(days=n),
                    requests=max(
                        0, int(daily * rng.uniform(0.6, 1.3) * (0.4 if n % 7 in (2, 3) else 1))
                    ),
                )
                for n in range(min(days, refreshed_days_ago))
            )
            TokenPermissionUsage.objects.bulk_create(
                TokenPermissionUsage(
                    user_token=token,
                    permission=code,
                    last_used_at=now - timedelta(minutes=rng.randint(1, 600)),
                )
                for code in exercised
            )

    crm, _provisioning, onboarding, _old = tokens
    for n in range(days):
        day = now - timedelta(days=n)
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5]) + (14 if n == 2 else 0)):
            at_exchange = rng.random() < 0.5
            events.append(
                SecurityEvent(
                    kind=Kind.EXCHANGE_FAILED if at_exchange else Kind.AUTHENTICATION_FAILED,
                    created_at=day - timedelta(minutes=rng.randint(0, 1400)),
                    reason=rng.choice(EXCHANGE_REASONS if at_exchange else ACCESS_REASONS),
                    address=rng.choice(ADDRESSES),
                    user_agent="python-requests/2.32",
                    path="/v1/auth/token" if at_exchange else "/v1/licenses",
                    method="POST" if at_exchange else "GET",
                    details={"stage": "exchange" if at_exchange else "access"},
                )
            )
        if n in (1, 2, 9, 16):
            events.append(
                SecurityEvent(
                    kind=Kind.RATE_LIMIT_HIT,
                    created_at=day - timedelta(minutes=rng.randint(0, 1400)),
                    reason="licence",
                    address=ADDRESSES[0],
                    path="/v1/licenses",
                    method="GET",
                    count=rng.randint(3, 40),
                    details={"scope": "licence"},
                )
            )
        if n % 4 == 0:
            events.append(
                SecurityEvent(
                    kind=Kind.PERMISSION_DENIED,
                    created_at=day - timedelta(minutes=rng.randint(0, 1400)),
                    reason="missing_permission",
                    address=ADDRESSES[2],
                    user_token=onboarding,
                    token_hint=onboarding.last_four,
                    path="/v1/groups",
                    method="POST",
                    details={"missing": ["create_groups"], "endpoint": "POST /v1/groups"},
                )
            )
        events.append(
            SecurityEvent(
                kind=Kind.TOKEN_EXCHANGED,
                created_at=day - timedelta(minutes=rng.randint(0, 1400)),
                address=ADDRESSES[0],
                user_token=crm,
                token_hint=crm.last_four,
                path="/v1/auth/token",
                method="POST",
            )
        )
    SecurityEvent.objects.bulk_create(events)

    alerts = [
        Alert(
            kind=Alert.Kind.FAILED_AUTHENTICATION,
            address=ADDRESSES[3],
            count=10,
            window_seconds=300,
            created_at=now - timedelta(hours=3),
            message=f"10 failed authentications from {ADDRESSES[3]} within 300 seconds",
        ),
        Alert(
            kind=Alert.Kind.PERMISSION_DENIED,
            user_token=onboarding,
            count=10,
            window_seconds=300,
            created_at=now - timedelta(days=1, hours=2),
            message=(
                f"User Token {onboarding.pk} ({onboarding.name}, …{onboarding.last_four}) was "
                "denied 10 times within 300 seconds"
            ),
        ),
        Alert(
            kind=Alert.Kind.FAILED_AUTHENTICATION,
            address=ADDRESSES[1],
            count=10,
            window_seconds=300,
            status=Alert.Status.ACKNOWLEDGED,
            acknowledged_at=now - timedelta(days=2),
            created_at=now - timedelta(days=2, hours=1),
            message=f"10 failed authentications from {ADDRESSES[1]} within 300 seconds",
        ),
    ]
    Alert.objects.bulk_create(alerts)
    return DemoActivity(tokens=tokens, events=len(events), alerts=len(alerts))
