"""A client of the licensing API that handles tokens the way the security guide asks.

- The User Token comes from the environment (`LICENSING_USER_TOKEN`) unless passed explicitly,
  and is exchanged for an access/refresh pair on the first call that needs one.
- A 401 renews the pair with the refresh token (rotation), falling back to a new exchange of the
  User Token when the refresh token is refused; the call is then repeated once.
- A 429 is retried after `Retry-After` (bounded: `max_retries`, and never a wait longer than
  `max_retry_wait`); a 503 is retried with backoff for calls that are safe to repeat.
- Secrets live in `Secret` objects; log lines carry method, path and status only, and messages
  built from server answers are scrubbed of every secret the client knows.
- Only HTTPS, except to the local machine (`localhost`, `*.localhost`, loopback addresses);
  redirects are never followed, so a bearer token never travels to another address.
- `host_header` sends another Host than base_url's, e.g. `LicensingClient("http://127.0.0.1:8000",
  host_header="demo.localhost:8000")` reaches the demo tenant where `*.localhost` does not
  resolve; links the server builds for that host are followed on base_url.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from licensing_client.errors import (
    AuthenticationError,
    ConfigurationError,
    RateLimitError,
    ServiceUnavailableError,
    TransportError,
    error_for,
)
from licensing_client.redaction import Secret, scrub
from licensing_client.verification import (
    ClockState,
    LicenseFile,
    load_license_file,
    verify_response,
)

logger = logging.getLogger("licensing_client")

DEFAULT_TOKEN_VARIABLE = "LICENSING_USER_TOKEN"
# Renew the access token this long before the server would refuse it.
EXPIRY_MARGIN = 60.0
# A Host header: a DNS name or an IPv4 address, optionally with a port.
HOST_HEADER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::\d{1,5})?")

Json = dict[str, Any]


@dataclass(frozen=True)
class ValidationResult:
    """The answer of POST /v1/licenses/validate."""

    valid: bool
    # VALID, NOT_FOUND, REVOKED, SUSPENDED, NOT_STARTED, EXPIRED, PRODUCT_MISMATCH,
    # FINGERPRINT_NOT_ACTIVATED, HEARTBEAT_DEAD
    code: str
    detail: str
    license: Json | None


@dataclass(frozen=True)
class MachineResult:
    """The answer of activate or heartbeat: the machine when `active`, otherwise the validation
    code that refused it (and the licence, unless NOT_FOUND)."""

    active: bool
    code: str
    detail: str
    machine: Json | None
    license: Json | None = None
    created: bool = False  # activate: this call took a slot (201)

    @classmethod
    def from_answer(cls, answer: Json, created: bool = False) -> MachineResult:
        if "code" in answer:  # refused by the licence check
            return cls(False, answer["code"], answer["detail"], None, answer["license"])
        return cls(True, "VALID", "", answer, created=created)


@dataclass(frozen=True)
class RefreshedUserToken:
    """A User Token refreshed through the API: its description and its new secret."""

    token: Json
    user_token: Secret


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx answer is handed back as it is, and refused below


class LicensingClient:
    """The licensing API of one tenant, e.g. `LicensingClient("https://acme.example.com")`."""

    def __init__(
        self,
        base_url: str,
        user_token: str | None = None,
        *,
        token_variable: str = DEFAULT_TOKEN_VARIABLE,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        host_header: str | None = None,
    ):
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigurationError(f"base_url must be an http(s) URL, not {base_url!r}")
        if parts.scheme == "http" and not _is_local(parts.hostname):
            raise ConfigurationError(
                "Plain HTTP is only allowed to the local machine; use https://"
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        if host_header is not None and not HOST_HEADER.fullmatch(host_header):
            raise ConfigurationError(f"host_header must be a host[:port], not {host_header!r}")
        self.host_header = host_header
        # Where the server's own links (a page's `next`) may point: base_url, or the host sent.
        self._origins = {self.base_url}
        if host_header is not None:
            self._origins.add(f"{parts.scheme}://{host_header}")
        token = user_token if user_token is not None else os.environ.get(token_variable)
        self._user_token = Secret(token.strip()) if token and token.strip() else None
        self._token_variable = token_variable
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._access: Secret | None = None
        self._refresh: Secret | None = None
        self._access_valid_until = 0.0
        self.permissions: list[str] = []
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirects)

    def __repr__(self) -> str:
        state = "set" if self._user_token else "unset"
        return f"LicensingClient({self.base_url!r}, user_token=<{state}, redacted>)"

    # --- Auth

    def authenticate(self) -> list[str]:
        """Exchange the User Token now (otherwise done on the first call); its permissions."""
        with self._lock:
            self._exchange()
        return self.permissions

    def _exchange(self) -> None:
        if self._user_token is None:
            raise ConfigurationError(
                f"No User Token: set {self._token_variable} in the environment or pass user_token"
            )
        self._store(self._send("POST", "/v1/auth/token", {"user_token": self._user_token.reveal()}))
        logger.info("Exchanged the User Token for an access token")

    def _renew(self, stale: Secret | None) -> None:
        """Renew the pair unless another thread already did; refresh first, then exchange."""
        with self._lock:
            if self._access is not None and self._access != stale:
                return
            if self._refresh is not None:
                try:
                    self._store(
                        self._send(
                            "POST", "/v1/auth/refresh", {"refresh_token": self._refresh.reveal()}
                        )
                    )
                    logger.info("Refreshed the access token")
                    return
                except AuthenticationError:
                    logger.info("Refresh token refused; exchanging the User Token again")
            self._exchange()

    def _store(self, pair: Json) -> None:
        self._access = Secret(pair["access_token"])
        self._refresh = Secret(pair["refresh_token"])
        self._access_valid_until = time.monotonic() + float(pair["expires_in"]) - EXPIRY_MARGIN
        self.permissions = list(pair.get("permissions", []))

    def _bearer(self) -> Secret:
        with self._lock:
            if self._access is None or time.monotonic() >= self._access_valid_until:
                stale = self._access
            else:
                return self._access
        self._renew(stale)
        return self._access

    # --- HTTP

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        auth: bool = True,
        safe: bool | None = None,
        statuses: list[int] | None = None,
        verify: Callable[[int, Any, bytes], None] | None = None,
    ) -> Any:
        """One API call: its JSON answer (None for 204). Raises an ApiError for an error body.

        `path` is relative to base_url (or an absolute URL on the same origin, e.g. a `next`
        link). `safe` calls (default: GET) are also retried after a 503. The status of the
        answer is appended to `statuses` when given. `verify(status, headers, body)` sees every
        answer's raw bytes first, error answers included, and may refuse it.
        """
        safe = method in ("GET", "HEAD") if safe is None else safe
        renewed = False
        attempt = 0
        while True:
            headers = {}
            if auth:
                access = self._bearer()
                headers["Authorization"] = f"Bearer {access.reveal()}"
            try:
                return self._send(method, path, body, headers, statuses, verify)
            except AuthenticationError:
                if not auth or renewed:
                    raise
                renewed = True
                self._renew(access)
            except (RateLimitError, ServiceUnavailableError) as error:
                if isinstance(error, ServiceUnavailableError) and not safe:
                    raise
                wait = self._wait_before_retry(error, attempt)
                if wait is None:
                    raise
                attempt += 1
                logger.warning(
                    "%s %s answered %s; retry %d of %d in %.1fs",
                    method, _path_only(path), error.status, attempt, self.max_retries, wait,
                )  # fmt: skip
                self._sleep(wait)

    def _wait_before_retry(self, error, attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        wait = error.retry_after if error.retry_after is not None else min(2.0**attempt, 30.0)
        if wait > self.max_retry_wait:
            return None  # e.g. a daily licence limit: waiting here would hang the caller for hours
        return max(wait, 0.0)

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(path)
            if f"{parts.scheme}://{parts.netloc}" not in self._origins:
                raise TransportError("Refusing to follow a link to another origin")
            path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        return self.base_url + "/" + path.lstrip("/")

    def _send(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        headers=None,
        statuses=None,
        verify=None,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        # http(s) only: base_url is checked in __init__, absolute links in _url.
        request = urllib.request.Request(self._url(path), data=data, method=method)  # noqa: S310
        request.add_header("Accept", "application/json")
        if self.host_header is not None:
            request.add_header("Host", self.host_header)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw, answer_headers = response.status, response.read(), response.headers
                retry_after = None
        except urllib.error.HTTPError as answer:
            status, raw, answer_headers = answer.code, answer.read(), answer.headers
            retry_after = _retry_after(answer.headers.get("Retry-After"))
            answer.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TransportError(
                f"{method} {_path_only(path)}: {self._scrub(str(error))}"
            ) from None
        logger.debug("%s %s -> %s", method, _path_only(path), status)
        if statuses is not None:
            statuses.append(status)
        if 300 <= status < 400:
            raise TransportError(f"{method} {_path_only(path)} was redirected; check base_url")
        if verify is not None:
            verify(status, answer_headers, raw)
        if status == 204 or not raw:
            if status >= 400:
                raise error_for(status, {}, retry_after)
            return None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise TransportError(
                f"{method} {_path_only(path)}: not a JSON answer ({status})"
            ) from None
        if status >= 400:
            body = answer if isinstance(answer, dict) else {}
            error = error_for(status, body, retry_after)
            error.args = (self._scrub(str(error)),)
            raise error
        return answer

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._user_token, self._access, self._refresh])

    # --- Generic resource calls

    def get(self, path: str) -> Json:
        return self.request("GET", path)

    def paginate(self, path: str, **params: Any) -> Iterator[Json]:
        """Every item of a list, page after page, following `next` until it is null."""
        query = {name: _query_value(value) for name, value in params.items() if value is not None}
        url: str | None = path + ("?" + urllib.parse.urlencode(query) if query else "")
        while url:
            page = self.request("GET", url)
            yield from page["results"]
            url = page.get("next")

    # --- Auth endpoints

    def me(self) -> Json:
        """GET /v1/auth/me: this token, its permissions and the tenant's remaining requests."""
        return self.get("/v1/auth/me")

    # --- Users and groups

    def users(
        self,
        *,
        username: str | None = None,
        is_active: bool | None = None,
        limit: int | None = None,
    ) -> Iterator[Json]:
        return self.paginate("/v1/users", username=username, is_active=is_active, limit=limit)

    def user(self, user_id: int) -> Json:
        return self.get(f"/v1/users/{int(user_id)}")

    def create_user(self, **fields: Any) -> Json:
        return self.request("POST", "/v1/users", fields)

    def update_user(self, user_id: int, **fields: Any) -> Json:
        return self.request("PATCH", f"/v1/users/{int(user_id)}", fields)

    def delete_user(self, user_id: int) -> None:
        self.request("DELETE", f"/v1/users/{int(user_id)}")

    def groups(self, *, member: int | None = None, limit: int | None = None) -> Iterator[Json]:
        return self.paginate("/v1/groups", member=member, limit=limit)

    def group(self, group_id: int) -> Json:
        return self.get(f"/v1/groups/{int(group_id)}")

    def create_group(self, **fields: Any) -> Json:
        return self.request("POST", "/v1/groups", fields)

    def update_group(self, group_id: int, **fields: Any) -> Json:
        return self.request("PATCH", f"/v1/groups/{int(group_id)}", fields)

    def delete_group(self, group_id: int) -> None:
        self.request("DELETE", f"/v1/groups/{int(group_id)}")

    # --- User Tokens (listing and refreshing; no call creates one)

    def user_tokens(self, *, limit: int | None = None) -> Iterator[Json]:
        return self.paginate("/v1/user-tokens", limit=limit)

    def user_token(self, token_id: int) -> Json:
        return self.get(f"/v1/user-tokens/{int(token_id)}")

    def refresh_user_token(self, token_id: int) -> RefreshedUserToken:
        """Replace a User Token's secret (every JWT issued from the old one stops working)."""
        answer = self.request("POST", f"/v1/user-tokens/{int(token_id)}/refresh")
        secret = Secret(answer.pop("user_token"))
        return RefreshedUserToken(token=answer, user_token=secret)

    # --- Products, plans, customers

    def products(
        self, *, code: str | None = None, active: bool | None = None, limit: int | None = None
    ) -> Iterator[Json]:
        return self.paginate("/v1/products", code=code, active=active, limit=limit)

    def product(self, product_id: int) -> Json:
        return self.get(f"/v1/products/{int(product_id)}")

    def create_product(self, code: str, name: str, **fields: Any) -> Json:
        return self.request("POST", "/v1/products", {"code": code, "name": name, **fields})

    def update_product(self, product_id: int, **fields: Any) -> Json:
        return self.request("PATCH", f"/v1/products/{int(product_id)}", fields)

    def plans(self, *, product: int | None = None, limit: int | None = None) -> Iterator[Json]:
        return self.paginate("/v1/plans", product=product, limit=limit)

    def plan(self, plan_id: int) -> Json:
        return self.get(f"/v1/plans/{int(plan_id)}")

    def create_plan(self, product: int, code: str, name: str, **fields: Any) -> Json:
        return self.request(
            "POST", "/v1/plans", {"product": product, "code": code, "name": name, **fields}
        )

    def update_plan(self, plan_id: int, **fields: Any) -> Json:
        return self.request("PATCH", f"/v1/plans/{int(plan_id)}", fields)

    def customers(
        self, *, external_id: str | None = None, limit: int | None = None
    ) -> Iterator[Json]:
        return self.paginate("/v1/customers", external_id=external_id, limit=limit)

    def customer(self, customer_id: int) -> Json:
        return self.get(f"/v1/customers/{int(customer_id)}")

    # --- Licences

    def licenses(
        self,
        *,
        status: str | None = None,
        product: int | None = None,
        customer: int | None = None,
        user: int | None = None,
        limit: int | None = None,
    ) -> Iterator[Json]:
        return self.paginate(
            "/v1/licenses",
            status=status,
            product=product,
            customer=customer,
            user=user,
            limit=limit,
        )

    def license(self, license_id: int) -> Json:
        return self.get(f"/v1/licenses/{int(license_id)}")

    def create_license(
        self,
        product: int,
        plan: int,
        *,
        customer: int | None = None,
        user: int | None = None,
        expires_at: datetime | str | None = None,
        metadata: Json | None = None,
    ) -> Json:
        """Issue a licence; the answer holds its generated `key`."""
        body: Json = {"product": product, "plan": plan, "customer": customer, "user": user}
        if expires_at is not None:
            body["expires_at"] = (
                expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
            )
        if metadata is not None:
            body["metadata"] = metadata
        return self.request("POST", "/v1/licenses", body)

    def update_license(self, license_id: int, **fields: Any) -> Json:
        """Change status, expiry, assignment or metadata."""
        return self.request("PATCH", f"/v1/licenses/{int(license_id)}", fields)

    def validate_license(
        self,
        key: str,
        product: str | None = None,
        *,
        fingerprint: str | None = None,
        public_keys: dict | None = None,
        state: ClockState | None = None,
    ) -> ValidationResult:
        """POST /v1/licenses/validate: no token needed. With `fingerprint`, the licence must also
        be active on that machine (FINGERPRINT_NOT_ACTIVATED, HEARTBEAT_DEAD otherwise).

        With the tenant's `public_keys` (`public_keys_from_jwks`), the answer must carry a valid
        signature and echo a fresh nonce, else BadSignatureError/UnknownKeyIdError (and, with a
        `state`, ClockWentBackwardsError for an answer older than one already seen)."""
        body: Json = {"key": key}
        if product is not None:
            body["product"] = product
        if fingerprint is not None:
            body["fingerprint"] = fingerprint
        answer, _ = self._token_free("/v1/licenses/validate", body, public_keys, state)
        return ValidationResult(
            answer["valid"], answer["code"], answer["detail"], answer["license"]
        )

    validate = validate_license

    # --- Machines (client applications: no token)

    def activate(
        self,
        key: str,
        fingerprint: str,
        *,
        name: str | None = None,
        platform: str | None = None,
        hostname: str | None = None,
        metadata: Json | None = None,
        public_keys: dict | None = None,
        state: ClockState | None = None,
    ) -> MachineResult:
        """POST /v1/licenses/activate: bind the licence to this machine (idempotent per
        fingerprint). Raises ConflictError when every activation slot is taken."""
        body: Json = {"key": key, "fingerprint": fingerprint}
        optional = {"name": name, "platform": platform, "hostname": hostname, "metadata": metadata}
        body.update({field: value for field, value in optional.items() if value is not None})
        answer, status = self._token_free("/v1/licenses/activate", body, public_keys, state)
        return MachineResult.from_answer(answer, created=status == 201)

    def heartbeat(
        self,
        key: str,
        fingerprint: str,
        *,
        public_keys: dict | None = None,
        state: ClockState | None = None,
    ) -> MachineResult:
        """POST /v1/licenses/heartbeat: this machine is still running (see `Heartbeats` for a
        background thread that keeps doing it)."""
        answer, _ = self._token_free(
            "/v1/licenses/heartbeat", {"key": key, "fingerprint": fingerprint}, public_keys, state
        )
        return MachineResult.from_answer(answer)

    def deactivate(self, key: str, fingerprint: str) -> None:
        """POST /v1/licenses/deactivate: free this machine's slot. Raises NotFoundError (key or
        fingerprint unknown) or ConflictError (churn budget used up; see `retry_after`)."""
        self.request(
            "POST",
            "/v1/licenses/deactivate",
            {"key": key, "fingerprint": fingerprint},
            auth=False,
            safe=False,
        )

    def _token_free(
        self, path: str, body: Json, public_keys: dict | None = None, state=None
    ) -> tuple[Json, int]:
        """An idempotent token-free call and its status (201 from 200 tells two answers apart);
        with `public_keys`, the answer is verified and must echo a fresh nonce."""
        verify = None
        if public_keys is not None:
            body = {**body, "nonce": secrets.token_urlsafe(24)}
            verify = self._verifier("POST", path, public_keys, body, state)
        status: list[int] = []
        answer = self.request(
            "POST", path, body, auth=False, safe=True, statuses=status, verify=verify
        )
        return answer, status[-1]

    def check_out_license(
        self,
        key: str,
        *,
        public_keys: dict,
        fingerprint: str | None = None,
        ttl_seconds: int | None = None,
        encrypt: bool = False,
        state: ClockState | None = None,
    ) -> LicenseFile | None:
        """POST /v1/licenses/checkout, verified; the opened licence file, or None when the licence
        is not valid (see `validate_license` for why)."""
        body: dict[str, Any] = {"key": key, "encrypt": encrypt, "nonce": secrets.token_urlsafe(24)}
        if fingerprint is not None:
            body["fingerprint"] = fingerprint
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        verify = self._verifier("POST", "/v1/licenses/checkout", public_keys, body, state)
        answer = self.request("POST", "/v1/licenses/checkout", body, auth=False, verify=verify)
        if not answer["license_file"]:
            return None
        return load_license_file(answer["license_file"], public_keys, key, fingerprint, state=state)

    def _verifier(self, method: str, path: str, public_keys, body: dict, state):
        full_path = urllib.parse.urlsplit(self._url(path)).path

        def verify(status: int, headers, raw: bytes) -> None:
            # Only a success answer echoes the nonce; error bodies are the contract's exact ones.
            echoed = status in (200, 201)
            verify_response(
                method=method,
                path=full_path,
                status=status,
                headers=headers,
                body=raw,
                public_keys=public_keys,
                nonce=body["nonce"] if echoed else None,
                state=state,
            )

        return verify


def _is_local(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _path_only(path: str) -> str:
    """A path for log lines: without scheme, host and query (a cursor is noise, not a secret)."""
    return urllib.parse.urlsplit(path).path


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
