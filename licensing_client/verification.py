"""Verifying signed answers and offline licence files, as a client application does it.

- `public_keys_from_jwks(jwks)`: the tenant's keys from `GET /v1/signing-keys` (pin them in the
  application, or fetch them once over TLS and keep them).
- `verify_response(...)`: checks an answer's RFC 9530 Content-Digest and its RFC 9421 signature,
  the request it answers (method, path, query) and its status; returns the parsed body.
- `load_license_file(text, public_keys, key, fingerprint=None, now=None)`: checks a licence file's
  signature, decrypts it when encrypted, checks its machine and its validity window.
- `ClockState`: the latest server time seen, kept in a small file, so a clock set back (to keep
  an expired file alive, or to replay an old answer) is noticed.

Every refusal raises a subclass of `VerificationError` (docs/offline.md lists them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from licensing_client.errors import (
    BadSignatureError,
    ClockWentBackwardsError,
    DecryptionError,
    LicenseFileExpiredError,
    MalformedLicenseFileError,
    UnknownKeyIdError,
    WrongFingerprintError,
    WrongLicenseKeyError,
)

# The server's constants (licensing/offline.py, tenants/http_signatures.py): the wire format.
BEGIN, END = "-----BEGIN LICENSE FILE-----", "-----END LICENSE FILE-----"
SIGNED_PREFIX = b"licensing-platform license-file v1\n"
FILE_KEY_INFO = b"licensing-platform license-file key v1"
ALG_SIGNED, ALG_ENCRYPTED = "ed25519", "aes-256-gcm+ed25519"
COVERED = ('"@method";req', '"@path";req', '"@query";req', '"@status"', '"content-digest"')
DEFAULT_TOLERANCE = timedelta(minutes=5)

_SIGNATURE_INPUT = re.compile(
    r"^(?P<label>[a-z*][a-z0-9_.*-]*)=\((?P<components>[^)]*)\)(?P<params>(;[a-z*][a-z0-9_.*-]*=[^;]+)*)$"
)
_SIGNATURE = re.compile(r"^(?P<label>[a-z*][a-z0-9_.*-]*)=:(?P<value>[A-Za-z0-9+/=]+):$")


def public_keys_from_jwks(jwks: dict | list) -> dict[str, Ed25519PublicKey]:
    """{kid: key} from a JWKS (`{"keys": [...]}`) or a list of its JWKs."""
    entries = jwks.get("keys", []) if isinstance(jwks, dict) else jwks
    keys = {}
    for entry in entries:
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        raw = base64.urlsafe_b64decode(entry["x"] + "=" * (-len(entry["x"]) % 4))
        keys[entry["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _key_for(public_keys: dict[str, Ed25519PublicKey], kid: str) -> Ed25519PublicKey:
    try:
        return public_keys[kid]
    except KeyError:
        raise UnknownKeyIdError(f"Signed by an unknown key {kid!r}.") from None


def normalise_key(raw: str) -> str:
    """A licence key as the server stores it: 25 symbols, upper case, in groups of 5."""
    symbols = re.sub(r"[\s\-_]+", "", raw).upper().translate(str.maketrans("ILO", "110"))
    return "-".join(symbols[i : i + 5] for i in range(0, len(symbols), 5))


def license_key_hash(key: str) -> str:
    """What GET /v1/licenses/revocations lists for a key: SHA-256 hex of the normalised key."""
    return hashlib.sha256(normalise_key(key).encode()).hexdigest()


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _utc_now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


class ClockState:
    """The latest time seen (server times and this clock), in a small JSON file.

    A clock more than `tolerance` behind it went backwards; an answer older than it by more than
    `tolerance` is a replay (or comes from a clock that went backwards)."""

    def __init__(self, path: str | os.PathLike, tolerance: timedelta = DEFAULT_TOLERANCE):
        self.path = Path(path)
        self.tolerance = tolerance

    @property
    def latest(self) -> datetime | None:
        try:
            return _parse_time(json.loads(self.path.read_text())["latest_ts"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            return None

    def check(self, moment: datetime, what: str) -> None:
        latest = self.latest
        if latest is not None and moment < latest - self.tolerance:
            raise ClockWentBackwardsError(
                f"{what} ({moment.isoformat()}) is older than a time already seen "
                f"({latest.isoformat()}) by more than {self.tolerance}."
            )

    def observe(self, moment: datetime) -> None:
        latest = self.latest
        if latest is not None and latest >= moment:
            return
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"latest_ts": moment.astimezone(UTC).isoformat()}))
        tmp.replace(self.path)


# --- Signed answers (RFC 9421 with RFC 9530's Content-Digest)


def _header(headers, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise BadSignatureError(f"The answer has no {name} header.")


def verify_response(
    *,
    method: str,
    path: str,
    query: str = "",
    status: int,
    headers,
    body: bytes,
    public_keys: dict[str, Ed25519PublicKey],
    nonce: str | None = None,
    state: ClockState | None = None,
    now: datetime | None = None,
) -> Any:
    """Check that the answer to `method path?query` is the one the tenant signed, then return
    its JSON body. `nonce`, when the request sent one, must come back in the body; `state`
    refuses answers older than the latest one seen (replays, a clock set back)."""
    digest = _header(headers, "Content-Digest")
    expected = f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    if digest.strip() != expected:
        raise BadSignatureError("The body does not match its Content-Digest.")
    signature_input = _SIGNATURE_INPUT.match(_header(headers, "Signature-Input").strip())
    signature = _SIGNATURE.match(_header(headers, "Signature").strip())
    if not signature_input or not signature or signature["label"] != signature_input["label"]:
        raise BadSignatureError("Malformed Signature-Input or Signature header.")
    if tuple(signature_input["components"].split(" ")) != COVERED:
        raise BadSignatureError("The signature does not cover the components it must.")
    params = dict(item.split("=", 1) for item in signature_input["params"].split(";")[1:])
    if params.get("alg") != '"ed25519"' or not params.get("keyid", "").startswith('"'):
        raise BadSignatureError("The signature is not an Ed25519 signature with a key id.")
    public_key = _key_for(public_keys, params["keyid"].strip('"'))
    query = query if query.startswith("?") else f"?{query}"
    lines = [
        f"{name}: {value}"
        for name, value in zip(
            COVERED, (method.upper(), path, query, str(status), digest), strict=True
        )
    ]
    lines.append(
        f'"@signature-params": ({signature_input["components"]}){signature_input["params"]}'
    )
    try:
        public_key.verify(base64.b64decode(signature["value"]), "\n".join(lines).encode())
    except (InvalidSignature, binascii.Error):
        raise BadSignatureError("The signature does not verify.") from None
    parsed = json.loads(body) if body else None
    if isinstance(parsed, dict) and nonce is not None and parsed.get("nonce") != nonce:
        raise BadSignatureError("The answer does not echo this request's nonce (a replay?).")
    if state is not None:
        moment = _utc_now(now)
        state.check(moment, "This clock")
        created = datetime.fromtimestamp(int(params.get("created", "0")), UTC)
        state.check(created, "The answer")
        state.observe(max(created, moment))
    return parsed


# --- Offline licence files


@dataclass(frozen=True)
class LicenseFile:
    """A verified licence file's payload."""

    license: dict
    license_key_hash: str
    fingerprint: str | None
    issued: datetime
    expires: datetime
    tenant: str
    epoch: int
    kid: str
    text: str  # the file itself, to keep for offline use

    def revoked_by(self, revocations: list[dict]) -> bool:
        """Whether GET /v1/licenses/revocations (its `results`) withdraws this file."""
        return any(
            entry.get("license_key_hash") == self.license_key_hash
            and entry.get("epoch", 0) > self.epoch
            for entry in revocations
        )


def _envelope(text: str) -> dict:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise MalformedLicenseFileError("Not a licence file (BEGIN/END LICENSE FILE lines).")
    try:
        envelope = json.loads(base64.b64decode("".join(lines[1:-1]), validate=True))
    except (binascii.Error, ValueError):
        raise MalformedLicenseFileError("The licence file's body is not base64 JSON.") from None
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(name), str) for name in ("payload", "sig", "alg", "kid")
    ):
        raise MalformedLicenseFileError("The licence file lacks payload, sig, alg or kid.")
    if envelope["alg"] not in (ALG_SIGNED, ALG_ENCRYPTED):
        raise MalformedLicenseFileError(f"Unknown licence file algorithm {envelope['alg']!r}.")
    return envelope


def _file_key(key: str, fingerprint: str | None) -> bytes:
    info = FILE_KEY_INFO + b"\x00" + (fingerprint or "").encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        normalise_key(key).encode()
    )


def load_license_file(
    text: str,
    public_keys: dict[str, Ed25519PublicKey],
    key: str,
    fingerprint: str | None = None,
    now: datetime | None = None,
    state: ClockState | None = None,
) -> LicenseFile:
    """Verify and open a licence file for licence `key` on the machine `fingerprint`."""
    envelope = _envelope(text)
    public_key = _key_for(public_keys, envelope["kid"])
    try:
        public_key.verify(
            base64.b64decode(envelope["sig"]), SIGNED_PREFIX + envelope["payload"].encode()
        )
        body = base64.b64decode(envelope["payload"], validate=True)
    except (InvalidSignature, binascii.Error):
        raise BadSignatureError("The licence file's signature does not verify.") from None
    if envelope["alg"] == ALG_ENCRYPTED:
        try:
            body = AESGCM(_file_key(key, fingerprint)).decrypt(
                body[:12], body[12:], envelope["kid"].encode()
            )
        except InvalidTag:
            raise DecryptionError(
                "The licence file does not decrypt: another licence key, or (a file bound to a "
                "machine) another fingerprint."
            ) from None
    payload = json.loads(body)
    if payload.get("license_key_hash") != license_key_hash(key):
        raise WrongLicenseKeyError("The licence file is for another licence key.")
    if payload.get("fingerprint") != fingerprint:
        raise WrongFingerprintError(
            "The licence file is bound to another machine."
            if payload.get("fingerprint")
            else "The licence file is not bound to a machine; give no fingerprint."
        )
    moment = _utc_now(now)
    issued, expires = _parse_time(payload["issued"]), _parse_time(payload["expires"])
    tolerance = state.tolerance if state is not None else DEFAULT_TOLERANCE
    if state is not None:
        state.check(moment, "This clock")
    if issued > moment + tolerance:
        raise ClockWentBackwardsError("The licence file was issued in this clock's future.")
    if expires <= moment:
        raise LicenseFileExpiredError(f"The licence file expired at {payload['expires']}.")
    if state is not None:
        state.observe(max(issued, moment))
    return LicenseFile(
        license=payload["license"],
        license_key_hash=payload["license_key_hash"],
        fingerprint=payload["fingerprint"],
        issued=issued,
        expires=expires,
        tenant=payload["tenant"],
        epoch=payload["epoch"],
        kid=envelope["kid"],
        text=text,
    )
