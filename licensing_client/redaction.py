"""Secrets that cannot leak by accident: their repr, str and format are redacted."""

from __future__ import annotations


class Secret:
    """A User Token, access token or refresh token. `reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[redacted]')"

    def __str__(self) -> str:
        return "[redacted]"

    def __format__(self, spec: str) -> str:
        return "[redacted]"

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # not picklable: a pickle would hold the plaintext
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str, secrets: list[Secret | None]) -> str:
    """`text` with every known secret value replaced, for messages built from server answers."""
    for secret in secrets:
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "[redacted]")
    return text
