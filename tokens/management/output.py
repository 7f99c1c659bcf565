"""Shared output of the token and monitoring commands: plain-text tables, durations, JSON."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder

from tenants.management.base import MAX_DAYS

DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """`30m`, `24h` or `7d` as a timedelta; anything else is a CommandError."""
    match = DURATION.match(value or "")
    if not match or int(match.group(1)) < 1:
        raise CommandError(
            f"--since must look like 30m, 24h or 7d (a positive number), not {value!r}."
        )
    number, unit = int(match.group(1)), match.group(2)
    try:
        span = timedelta(**{UNITS[unit]: number})
    except OverflowError:
        span = None
    if span is None or span > timedelta(days=MAX_DAYS):
        raise CommandError(f"--since {value!r} is too far back (at most {MAX_DAYS} days).")
    return span


def printable(value) -> str:
    """`value` as text safe for a terminal: control and other invisible characters (escape
    sequences, bidirectional overrides, line breaks) escaped as \\x1b, \\u202e, ... Token names
    and alert messages are written by tenant administrators or come from requests."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def when(value: datetime | None, empty: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else empty


def table(headers: list[str], rows: list[list], empty: str = "(none)") -> str:
    """A left-aligned plain-text table."""
    if not rows:
        return f"  {empty}"
    cells = [[str(c) for c in headers]] + [
        ["" if c is None else printable(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(data) -> str:
    # ensure_ascii: every control or invisible character of a name or message arrives escaped.
    return json.dumps(data, indent=2, cls=DjangoJSONEncoder, ensure_ascii=True)
