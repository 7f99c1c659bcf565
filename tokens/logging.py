"""Logs never hold secrets: anything that looks like a User Token or a JWT is redacted.

Two layers, both idempotent:

- `RedactSecretsFilter`, put on every handler in settings.LOGGING;
- `install()` (called from TokensConfig.ready) wraps the log-record factory, so every record is
  redacted when it is created, whatever logger wrote it and whichever handler receives it later
  (handlers added at run time, pytest's caplog, a server's error log...).

A record's message is rendered once, redacted, and kept without its args; its exception and stack
text are rendered, redacted and kept as text (`exc_info` is dropped so no handler can render the
traceback again from the live exception).
"""

import logging
import re
import traceback

REDACTED = "[redacted]"

# A uuid in any form `uuid.UUID` accepts (User Token secrets are uuid4, accepted case-insensitively
# with or without dashes), and a JWT: base64url segments, the first starting with eyJ ('{"').
SECRET_PATTERNS = [
    re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"),
    re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"),
]

# LogRecord attributes that are not user data.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


def redact(text: str) -> str:
    """`text` with every User-Token-like or JWT-like substring replaced by [redacted]."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact `record` in place; returns it. Idempotent: a handler may redact it again, which
    also covers `extra` attributes (set by the logger after the record factory ran)."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: keep what was given, as text
        message = f"{record.msg!r} {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    record.exc_info = None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for name, value in list(record.__dict__.items()):
        if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
            setattr(record, name, redact(value))
    return record


class RedactSecretsFilter(logging.Filter):
    """A handler filter that redacts User Tokens and JWTs from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed_factory = None


def install() -> None:
    """Redact every log record at creation (idempotent)."""
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory:
        return

    def factory(*args, **kwargs):
        return redact_record(current(*args, **kwargs))

    _installed_factory = factory
    logging.setLogRecordFactory(factory)
