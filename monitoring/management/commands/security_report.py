from django.db.models import Count, Max, Sum
from django.utils import timezone

from monitoring.events import FAILED_AUTHENTICATION_KINDS, catch_up
from monitoring.models import Alert, SecurityEvent
from tenants.management.base import TenantCommand
from tokens.management.output import parse_duration, table, to_json, when

Kind = SecurityEvent.Kind
ADMINISTRATION_KINDS = [
    Kind.USER_TOKEN_CREATED,
    Kind.USER_TOKEN_REFRESHED,
    Kind.USER_TOKEN_DEACTIVATED,
    Kind.USER_TOKEN_ACTIVATED,
    Kind.USER_TOKEN_EXPIRED,
    Kind.PERMISSIONS_CHANGED,
]


class Command(TenantCommand):
    help = (
        "Security events of a recent period: failed authentications by address and reason, "
        "permission denials, rate-limit hits, expired-licence refusals, token administration "
        "and alerts."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--since", default="24h", help="How far back: 30m, 24h, 7d... (default 24h)."
        )
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle_tenant(self, tenant, options):
        span = parse_duration(options["since"])
        now = timezone.now()
        catch_up(now)
        report = build_report(now - span, now)
        report = {"tenant": tenant.schema_name, **report}
        if options["format"] == "json":
            self.stdout.write(to_json(report))
        else:
            self.stdout.write(render(report))


def build_report(since, until) -> dict:
    events = SecurityEvent.objects.filter(created_at__gte=since, created_at__lte=until)
    summary = {
        row["kind"]: {"events": row["events"], "occurrences": row["occurrences"]}
        for row in events.values("kind").annotate(events=Count("id"), occurrences=Sum("count"))
    }
    failed = (
        events.filter(kind__in=FAILED_AUTHENTICATION_KINDS)
        .values("address", "reason", "details__stage")
        .annotate(count=Sum("count"), last_seen=Max("created_at"))
        .order_by("-count", "address", "reason")
    )
    denials = (
        events.filter(kind=Kind.PERMISSION_DENIED)
        .values("user_token_id", "token_hint", "method", "path", "details__missing")
        .annotate(count=Sum("count"), last_seen=Max("created_at"))
        .order_by("-count", "user_token_id")
    )
    rate_limits = (
        events.filter(kind=Kind.RATE_LIMIT_HIT)
        .values("reason", "details__scope", "address")
        .annotate(count=Sum("count"), last_seen=Max("created_at"))
        .order_by("-count", "address")
    )
    licence = events.filter(kind=Kind.LICENCE_REFUSED).aggregate(n=Sum("count"))["n"] or 0
    administration = (
        events.filter(kind__in=ADMINISTRATION_KINDS)
        .select_related("actor")
        .order_by("created_at", "id")
    )
    alerts = Alert.objects.filter(created_at__gte=since, created_at__lte=until).order_by(
        "created_at", "id"
    )
    return {
        "since": since,
        "until": until,
        "summary": summary,
        "failed_authentications": [
            {
                "address": row["address"],
                "reason": row["reason"],
                "stage": row["details__stage"] or "",
                "count": row["count"],
                "last_seen": row["last_seen"],
            }
            for row in failed
        ],
        "permission_denials": [
            {
                "user_token": row["user_token_id"],
                "token_hint": row["token_hint"],
                "endpoint": f"{row['method']} {row['path']}",
                "missing": row["details__missing"] or [],
                "count": row["count"],
                "last_seen": row["last_seen"],
            }
            for row in denials
        ],
        "rate_limit_hits": [
            {
                "limit": row["reason"],
                "scope": row["details__scope"],
                "address": row["address"],
                "count": row["count"],
                "last_seen": row["last_seen"],
            }
            for row in rate_limits
        ],
        "licence_refusals": licence,
        "token_administration": [
            {
                "at": event.created_at,
                "event": event.kind,
                "user_token": event.user_token_id,
                "token_hint": event.token_hint,
                "actor": event.actor.get_username() if event.actor else None,
                "via": event.via,
                "details": event.details,
            }
            for event in administration
        ],
        "alerts": [
            {
                "id": alert.pk,
                "at": alert.created_at,
                "kind": alert.kind,
                "status": alert.status,
                "message": alert.message,
            }
            for alert in alerts
        ],
        "open_alerts": Alert.objects.filter(status=Alert.Status.OPEN).count(),
    }


def render(report: dict) -> str:
    labels = dict(Kind.choices)
    out = [
        f"Security report for {report['tenant']!r}: {when(report['since'])} to "
        f"{when(report['until'])} UTC",
        "",
        "Events",
        table(
            ["EVENT", "EVENTS", "OCCURRENCES"],
            [
                [labels.get(kind, kind), n["events"], n["occurrences"]]
                for kind, n in sorted(report["summary"].items())
            ],
        ),
        "",
        "Failed authentications by address and reason",
        table(
            ["ADDRESS", "REASON", "STAGE", "COUNT", "LAST SEEN"],
            [
                [r["address"] or "-", r["reason"], r["stage"], r["count"], when(r["last_seen"])]
                for r in report["failed_authentications"]
            ],
        ),
        "",
        "Permission denials",
        table(
            ["TOKEN", "ENDPOINT", "MISSING", "COUNT", "LAST SEEN"],
            [
                [
                    f"{r['user_token'] or '-'} (…{r['token_hint']})",
                    r["endpoint"],
                    ",".join(r["missing"]),
                    r["count"],
                    when(r["last_seen"]),
                ]
                for r in report["permission_denials"]
            ],
        ),
        "",
        "Rate-limit hits",
        table(
            ["LIMIT", "SCOPE", "ADDRESS", "COUNT", "LAST SEEN"],
            [
                [
                    r["limit"],
                    r["scope"] or "-",
                    r["address"] or "-",
                    r["count"],
                    when(r["last_seen"]),
                ]
                for r in report["rate_limit_hits"]
            ],
        ),
        "",
        f"Requests refused for an expired platform licence: {report['licence_refusals']}",
        "",
        "Token administration",
        table(
            ["AT", "EVENT", "TOKEN", "BY", "DETAILS"],
            [
                [
                    when(r["at"]),
                    labels.get(r["event"], r["event"]),
                    f"{r['user_token'] or '-'} (…{r['token_hint']})",
                    (r["actor"] or "-") + (f" via {r['via']}" if r["via"] else ""),
                    _details(r["details"]),
                ]
                for r in report["token_administration"]
            ],
        ),
        "",
        f"Alerts raised ({report['open_alerts']} open in total)",
        table(
            ["ID", "AT", "STATUS", "MESSAGE"],
            [[a["id"], when(a["at"]), a["status"], a["message"]] for a in report["alerts"]],
        ),
    ]
    return "\n".join(out)


def _details(details: dict) -> str:
    parts = [f"{key} {','.join(details[key])}" for key in ("added", "removed") if details.get(key)]
    if not parts and details.get("permissions"):
        parts.append(f"permissions {','.join(details['permissions'])}")
    return "; ".join(parts)
