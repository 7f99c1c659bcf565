"""The tenant's security dashboard (admin): charts drawn on the server as inline SVG, the tokens
with their unused permissions and age, and the open alerts. No script, no CDN."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from licensing.models import Machine
from monitoring import audit, events
from monitoring.models import Alert, SecurityEvent, TokenUsageDay

DAYS = 30


@dataclass(frozen=True)
class Series:
    title: str
    css_class: str
    points: list[tuple[date, int]]

    @property
    def total(self) -> int:
        return sum(value for _, value in self.points)


def _days(today: date, days: int) -> list[date]:
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _fill(days: list[date], counts: dict[date, int]) -> list[tuple[date, int]]:
    return [(day, int(counts.get(day) or 0)) for day in days]


def event_counts_per_day(kinds, since: datetime) -> dict[date, int]:
    rows = (
        SecurityEvent.objects.filter(kind__in=kinds, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("count"))
    )
    return {row["day"]: row["total"] for row in rows}


def requests_per_day(since: date) -> dict[date, int]:
    rows = (
        TokenUsageDay.objects.filter(day__gte=since).values("day").annotate(total=Sum("requests"))
    )
    return {row["day"]: row["total"] for row in rows}


def activations_per_day(since: datetime) -> dict[date, int]:
    """Machines activated (new or revived by activation) per day."""
    rows = (
        Machine.objects.filter(activated_at__gte=since)
        .annotate(day=TruncDate("activated_at"))
        .values("day")
        .annotate(total=Count("pk"))
    )
    return {row["day"]: row["total"] for row in rows}


def chart_series(now: datetime, days: int = DAYS) -> list[Series]:
    today = timezone.localdate(now)
    span = _days(today, days)
    since = now - timedelta(days=days)
    return [
        Series(
            "Authorised API requests per day", "requests", _fill(span, requests_per_day(span[0]))
        ),
        Series(
            "Failed authentications per day",
            "failures",
            _fill(span, event_counts_per_day(events.FAILED_AUTHENTICATION_KINDS, since)),
        ),
        Series(
            "Rate-limit hits per day",
            "ratelimits",
            _fill(span, event_counts_per_day([SecurityEvent.Kind.RATE_LIMIT_HIT], since)),
        ),
        Series(
            "Machine activations per day", "activations", _fill(span, activations_per_day(since))
        ),
        Series(
            "Activation refusals per day",
            "activation-refusals",
            _fill(span, event_counts_per_day([SecurityEvent.Kind.ACTIVATION_REFUSED], since)),
        ),
    ]


def bar_chart(series: Series, width: int = 640, height: int = 180) -> SafeString:
    """An accessible SVG bar chart of one series, every value escaped."""
    left, right, top, bottom = 44, 8, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([value for _, value in series.points] + [1])
    slot = plot_w / max(len(series.points), 1)
    bars = []
    for n, (day, value) in enumerate(series.points):
        bar_h = round(plot_h * value / peak, 1)
        x = round(left + n * slot + slot * 0.15, 1)
        y = round(top + plot_h - bar_h, 1)
        bars.append(
            format_html(
                '<rect class="dashboard-bar" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>",
                x,
                y,
                round(slot * 0.7, 1),
                bar_h,
                day.isoformat(),
                value,
            )
        )
    labels = []
    for n, (day, _) in enumerate(series.points):
        if (len(series.points) - 1 - n) % 7 == 0:  # weekly, ending today
            labels.append(
                format_html(
                    '<text class="dashboard-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    round(left + n * slot + slot / 2, 1),
                    height - 8,
                    day.strftime("%b %d"),
                )
            )
    axis = format_html(
        '<line class="dashboard-axis-line" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<line class="dashboard-axis-line" x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>'
        '<text class="dashboard-axis" x="{lx}" y="{ty}" text-anchor="end">{peak}</text>'
        '<text class="dashboard-axis" x="{lx}" y="{b}" text-anchor="end">0</text>',
        l=left,
        r=width - right,
        t=top,
        b=top + plot_h,
        lx=left - 6,
        ty=top + 9,
        peak=peak,
    )
    return format_html(
        '<svg class="dashboard-chart dashboard-{}" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" width="{}" height="{}" xmlns="http://www.w3.org/2000/svg">'
        "<title>{}</title>{}{}{}</svg>",
        series.css_class,
        f"{series.title}: {series.total} in {len(series.points)} days",
        width,
        height,
        width,
        height,
        series.title,
        axis,
        mark_safe("".join(bars)),  # noqa: S308 - each bar built by format_html
        mark_safe("".join(labels)),  # noqa: S308 - each label built by format_html
    )


# Reasons recorded on security events, in words; an unknown code is shown de-underscored.
REASON_LABELS = {
    "unknown_token": "Unknown token",
    "token_expired": "Token expired",
    "token_inactive": "Token deactivated",
    "invalid_jwt": "Invalid access token",
    "revoked_by_refresh": "Access token replaced by a refresh",
    "missing_credentials": "No credentials sent",
    "bad_credentials": "Wrong username or password",
    "missing_permission": "Missing permission",
    "licence": "Licence requests",
    "licence_expired": "Platform licence expired",
    "expired_on_purpose": "Expired by an administrator",
    "expires_at_passed": "Expiry date passed",
    "activation_limit": "Activation limit reached",
    "abuse": "Abuse",
    "client": "Client requests",
}


FLAG_LABELS = {
    audit.Flag.NEVER_USED: "never used",
    audit.Flag.UNUSED_PERMISSIONS: "unused permissions",
    audit.Flag.REFRESH_OVERDUE: "refresh overdue",
    audit.Flag.EXPIRING_SOON: "expiring soon",
    audit.Flag.EXPIRED: "expired",
    audit.Flag.INACTIVE: "inactive",
}


def reason_label(code: str) -> str:
    if not code:
        return ""
    return REASON_LABELS.get(code) or code.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Tile:
    label: str
    value: int
    url: str


def _events_url(kinds, since: datetime) -> str:
    query = {"created_at__gte": since.isoformat(timespec="seconds")}
    if len(kinds) == 1:
        query["kind__exact"] = kinds[0]
    else:
        query["kind__in"] = ",".join(kinds)
    return f"{reverse('admin:monitoring_securityevent_changelist')}?{urlencode(query)}"


def summary(now: datetime) -> list[Tile]:
    """The last 24 hours' figures, each linking to the admin list of what it counts."""
    since = now - timedelta(hours=24)
    recent = SecurityEvent.objects.filter(created_at__gte=since)
    totals = dict(
        recent.values_list("kind").annotate(total=Sum("count")).values_list("kind", "total")
    )
    Kind = SecurityEvent.Kind
    counted = [
        ("Token exchanges", [Kind.TOKEN_EXCHANGED]),
        ("Failed authentications", list(events.FAILED_AUTHENTICATION_KINDS)),
        ("Permission denials", [Kind.PERMISSION_DENIED]),
        ("Rate-limit hits", [Kind.RATE_LIMIT_HIT]),
        ("Activation refusals", [Kind.ACTIVATION_REFUSED]),
    ]
    tiles = [
        Tile(label, sum(totals.get(kind, 0) for kind in kinds), _events_url(kinds, since))
        for label, kinds in counted
    ]
    alerts = reverse("admin:monitoring_alert_changelist")
    open_alerts = Alert.objects.filter(status=Alert.Status.OPEN).count()
    query = urlencode({"status__exact": Alert.Status.OPEN})
    return [*tiles, Tile("Open alerts", open_alerts, f"{alerts}?{query}")]


def context(now: datetime | None = None, unused_days: int = 90) -> dict:
    """Everything the dashboard template shows, for the current tenant."""
    now = now or timezone.now()
    events.catch_up(now)
    series = chart_series(now)
    audits = audit.audit_tokens(unused_days=unused_days, now=now)
    return {
        "now": now,
        "unused_days": unused_days,
        "charts": [(s, bar_chart(s)) for s in series],
        "summary": summary(now),
        "audits": [
            (row, [(flag, FLAG_LABELS.get(flag, flag.replace("_", " "))) for flag in row.flags])
            for row in audits
        ],
        "open_alerts": list(
            Alert.objects.filter(status=Alert.Status.OPEN).select_related("user_token")[:50]
        ),
        "recent_events": [
            (event, reason_label(event.reason))
            for event in SecurityEvent.objects.select_related("user_token", "actor").order_by(
                "-created_at"
            )[:15]
        ],
    }
