"""Input the API refuses by name, for services (their ValidationError answers 400 with details)."""

from django.core.exceptions import ValidationError


def refuse_fields(given, *, allowed, message: str = "This field cannot be changed.") -> None:
    """Raise ValidationError naming each of `given` not in `allowed` (sorted), with `message`."""
    refused = set(given) - set(allowed)
    if refused:
        raise ValidationError({name: [message] for name in sorted(refused)})
