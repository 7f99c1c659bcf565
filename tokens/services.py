"""User Tokens: creating, refreshing, deactivating, exchanging and checking them. Written once;
the admin, the API and the operator commands all call these."""

from __future__ import annotations

import functools
import ipaddress
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, connections, router, transaction
from django.db.models import F, Q
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django_tenants.utils import get_public_schema_name
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

from api.statements import prepared_cursor
from api.timestamps import use_compiled_timestamps
from tokens import hashing, signals
from tokens.catalogue import ALL_PERMISSIONS, Permission
from tokens.jwt import (
    GENERATION_CLAIM,
    TENANT_CLAIM,
    USER_TOKEN_CLAIM,
    ApiAccessToken,
    ApiRefreshToken,
    issue,
    verified_payload,
)
from tokens.models import SpentRefreshToken, UserToken
from webhooks.models import EventType
from webhooks.services import emit_event

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION = timedelta(minutes=1)


class FailureReason(StrEnum):
    """Why authentication failed: recorded for monitoring, never shown to the caller."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown_token"
    INACTIVE = "token_inactive"
    EXPIRED = "token_expired"
    OWNER_INACTIVE = "owner_inactive"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    WRONG_TENANT = "wrong_tenant"
    INVALID_JWT = "invalid_jwt"
    REVOKED = "revoked_by_refresh"
    REFRESH_SPENT = "refresh_token_spent"
    MISSING = "missing_credentials"


class TokenRefused(Exception):
    """Authentication failed; `reason` is one of FailureReason, `user_token_id` when known."""

    def __init__(self, reason: str, user_token_id: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.user_token_id = user_token_id


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    permissions: list[str]

    def as_response(self) -> dict:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "permissions": self.permissions,
        }


@dataclass(frozen=True)
class TokenAuth:
    """`request.auth` for a request made with an access token."""

    user_token: UserToken
    permissions: frozenset[str]
    row: dict | None = None  # the view's RowRead, read with the token (None: not asked or absent)


def _clean_permissions(permissions) -> list[str]:
    codes = sorted(set(permissions))
    unknown = set(codes) - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"Unknown permissions: {sorted(unknown)}")
    return codes


def _new_secret_fields() -> tuple[str, dict]:
    secret = hashing.new_secret()
    return secret, {
        "digest": hashing.digest(secret),
        "key_id": hashing.current_key_id(),
        "last_four": secret[-4:],
    }


# --- Administration


def _revoke_jwts(token: UserToken, **changes) -> None:
    """Bump the generation (with `changes`): every JWT issued from `token` so far stops working."""
    with transaction.atomic():
        UserToken.objects.filter(pk=token.pk).update(generation=F("generation") + 1, **changes)
        token.refresh_from_db()


def create_user_token(
    *,
    owner: AbstractBaseUser,
    name: str,
    permissions,
    expires_at: datetime | None = None,
    allowed_ips=(),
    created_by: AbstractBaseUser | None = None,
) -> tuple[UserToken, str]:
    """A new User Token and its secret; the secret exists only in the returned value."""
    secret, fields = _new_secret_fields()
    token = UserToken.objects.create(
        owner=owner,
        name=name,
        permissions=_clean_permissions(permissions),
        expires_at=expires_at,
        allowed_ips=list(allowed_ips),
        created_by=created_by,
        **fields,
    )
    return token, secret


def refresh_user_token(
    token: UserToken, *, actor: AbstractBaseUser | None = None, via: str, request=None
) -> str:
    """Replace the secret and bump the generation: every JWT issued before stops working at once."""
    secret, fields = _new_secret_fields()
    with transaction.atomic():
        _revoke_jwts(token, refreshed_at=timezone.now(), **fields)
        emit_event(EventType.USER_TOKEN_REFRESHED, {"user_token": _event_data(token)})
    signals.user_token_refreshed.send(
        UserToken, user_token=token, actor=actor, via=via, request=request
    )
    logger.info("User Token %s refreshed via %s", token.pk, via)
    return secret


def deactivate_user_token(
    token: UserToken, *, actor: AbstractBaseUser | None = None, via: str, request=None
) -> None:
    """A revocation: the generation is bumped too, so the access and refresh tokens issued before
    stay dead if the token is activated again (only a new exchange of the secret works then)."""
    if not token.is_active:
        return
    with transaction.atomic():
        _revoke_jwts(token, is_active=False, deactivated_at=timezone.now())
        emit_event(EventType.USER_TOKEN_DEACTIVATED, {"user_token": _event_data(token)})
    signals.user_token_deactivated.send(
        UserToken, user_token=token, actor=actor, via=via, request=request
    )
    logger.info("User Token %s deactivated via %s", token.pk, via)


def stale_tokens(unused_days: int, now: datetime | None = None):
    """Active tokens not used for `unused_days` (never-used ones count from their creation)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=unused_days)
    return (
        UserToken.objects.select_related("owner")
        .filter(is_active=True)
        .filter(Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff))
        .order_by("pk")
    )


def _event_data(token: UserToken) -> dict:
    """A User Token in webhook events: what identifies it, never its secret or digest."""
    return {
        "id": token.pk,
        "name": token.name,
        "owner": token.owner_id,
        "last_four": token.last_four,
        "generation": token.generation,
        "is_active": token.is_active,
    }


def activate_user_token(
    token: UserToken, *, actor: AbstractBaseUser | None = None, via: str = "", request=None
) -> None:
    if token.is_active:
        return
    token.is_active = True
    token.deactivated_at = None
    token.save(update_fields=["is_active", "deactivated_at"])
    signals.user_token_activated.send(
        UserToken, user_token=token, actor=actor, via=via, request=request
    )
    logger.info("User Token %s activated via %s", token.pk, via)


def expire_user_token(token: UserToken, *, actor=None, via: str, request=None) -> None:
    """End time-bounded access now."""
    token.expires_at = timezone.now()
    token.save(update_fields=["expires_at"])
    signals.user_token_expired.send(
        UserToken, user_token=token, actor=actor, via=via, request=request
    )


def update_user_token(
    token: UserToken,
    *,
    actor: AbstractBaseUser | None = None,
    via: str,
    request=None,
    **changes,
) -> UserToken:
    """Change a token's name, permissions, expiry or networks; permission changes are signalled
    (by `_signal_permission_change`, with this actor, channel and request)."""
    if "permissions" in changes:
        changes["permissions"] = _clean_permissions(changes["permissions"])
    for field, value in changes.items():
        setattr(token, field, value)
    token.full_clean(exclude=["owner", "digest", "key_id", "last_four"])
    # Only the changed fields: a stale object must never write back an old digest or generation.
    context = _change_context.set(_ChangeContext(token.pk, actor, via, request))
    try:
        token.save(update_fields=list(changes))
    finally:
        _change_context.reset(context)
    return token


# --- Permission changes: detected here once, whatever saved the token (service, admin, shell)


@dataclass(frozen=True)
class _ChangeContext:
    token_id: int
    actor: AbstractBaseUser | None
    via: str
    request: object


_change_context: ContextVar[_ChangeContext | None] = ContextVar("user_token_change", default=None)
STORED_PERMISSIONS_ATTR = "_stored_permissions"  # set by pre_save, read once by post_save


def _remember_stored_permissions(sender, *, instance, update_fields=None, raw=False, **kw):
    if raw or instance.pk is None or connection.schema_name == get_public_schema_name():
        return
    if update_fields is not None and "permissions" not in update_fields:
        return
    stored = UserToken.objects.filter(pk=instance.pk).values_list("permissions", flat=True).first()
    setattr(instance, STORED_PERMISSIONS_ATTR, stored)


def _signal_permission_change(sender, *, instance, created, raw=False, **kw):
    before = instance.__dict__.pop(STORED_PERMISSIONS_ATTR, None)
    if raw or created or before is None or set(before) == set(instance.permissions):
        return
    context = _change_context.get()
    if context is None or context.token_id != instance.pk:
        context = _ChangeContext(instance.pk, None, "", None)
    signals.user_token_permissions_changed.send(
        UserToken,
        user_token=instance,
        actor=context.actor,
        via=context.via,
        request=context.request,
        added=sorted(set(instance.permissions) - set(before)),
        removed=sorted(set(before) - set(instance.permissions)),
    )


def connect() -> None:
    """Called once by the app's ready()."""
    pre_save.connect(_remember_stored_permissions, sender=UserToken, dispatch_uid="tokens.pre_save")
    post_save.connect(_signal_permission_change, sender=UserToken, dispatch_uid="tokens.post_save")


class RefreshRefusal:
    """Why a token may not refresh another one through the API: recorded, never shown."""

    PERMISSIONS = "target_has_more_permissions"
    NETWORKS = "target_less_restricted_by_address"
    EXPIRY = "target_expires_later"
    OWNER = "target_owner_more_privileged"


def _networks(values) -> list:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _within(networks, bounds) -> bool:
    """Every network of `networks` lies inside one of `bounds` (no bound: anything goes)."""
    if not bounds:
        return True
    return bool(networks) and all(
        any(net.version == bound.version and net.subnet_of(bound) for bound in bounds)
        for net in networks
    )


def _admin_rank(user) -> int:
    return 2 if user.is_superuser else 1 if user.is_staff else 0


def refresh_refusal(caller: TokenAuth, target: UserToken) -> str | None:
    """Why `caller` may not refresh `target` (a RefreshRefusal), or None when it may.

    A refresh hands over a working secret of `target`, so it must not shed any of the caller's
    limits: the target's permissions are a subset of the caller's, its networks lie within the
    caller's (a caller without any allows any), it expires no later, and its owner holds no admin
    rights the caller's owner lacks (superuser > staff > regular user)."""
    caller_token = caller.user_token
    if not set(target.permissions) <= set(caller.permissions):
        return RefreshRefusal.PERMISSIONS
    if not _within(_networks(target.allowed_ips), _networks(caller_token.allowed_ips)):
        return RefreshRefusal.NETWORKS
    if caller_token.expires_at is not None and (
        target.expires_at is None or target.expires_at > caller_token.expires_at
    ):
        return RefreshRefusal.EXPIRY
    if _admin_rank(target.owner) > _admin_rank(caller_token.owner):
        return RefreshRefusal.OWNER
    return None


def refresh_user_token_as(caller: TokenAuth, target: UserToken, *, request=None) -> str:
    """Refresh `target` for the API caller `caller`; PermissionDenied (recorded as a permission
    denial) unless `refresh_refusal` allows it."""
    reason = refresh_refusal(caller, target)
    if reason is not None:
        signals.permission_denied.send(
            UserToken,
            request=request,
            user_token=caller.user_token,
            missing=sorted(set(target.permissions) - set(caller.permissions)),
            method=getattr(request, "method", ""),
            path=getattr(request, "path", ""),
            reason=reason,
            target=target.pk,
        )
        raise PermissionDenied("This token may not refresh that User Token.")
    return refresh_user_token(target, actor=caller.user_token.owner, via="api", request=request)


# --- Authentication


def check_usable(token: UserToken, *, address: str, now: datetime | None = None) -> None:
    """Raise TokenRefused unless the User Token may be used now from `address`."""
    if not token.is_active:
        raise TokenRefused(FailureReason.INACTIVE, token.pk)
    if token.is_expired_at(now or timezone.now()):
        raise TokenRefused(FailureReason.EXPIRED, token.pk)
    if not token.owner.is_active:
        raise TokenRefused(FailureReason.OWNER_INACTIVE, token.pk)
    if not token.allows_address(address):
        raise TokenRefused(FailureReason.ADDRESS_NOT_ALLOWED, token.pk)


def _find_by_secret(secret) -> UserToken:
    if not isinstance(secret, str) or not secret:
        # Hash something anyway, so a malformed value costs the same as an unknown one.
        hashing.digest("")
        raise TokenRefused(FailureReason.MALFORMED)
    candidates = hashing.candidate_digests(secret)
    found = {t.digest: t for t in find_tokens_by_digest([d for _, d in candidates])}
    for key_id, candidate in candidates:
        token = found.get(candidate)
        if token is not None and token.key_id == key_id:
            if key_id != hashing.current_key_id():
                _rehash(token, secret)
            return token
    raise TokenRefused(FailureReason.UNKNOWN)


def _rehash(token: UserToken, secret: str) -> None:
    token.digest, token.key_id = hashing.digest(secret), hashing.current_key_id()
    UserToken.objects.filter(pk=token.pk).update(digest=token.digest, key_id=token.key_id)


def _issue_pair(token: UserToken) -> TokenPair:
    tenant = connection.schema_name
    access = issue(ApiAccessToken, tenant=tenant, user_token=token)
    refresh = issue(ApiRefreshToken, tenant=tenant, user_token=token)
    return TokenPair(
        access_token=str(access),
        refresh_token=str(refresh),
        expires_in=int(ApiAccessToken.lifetime.total_seconds()),
        permissions=sorted(token.permissions),
    )


def exchange_user_token(secret, *, address: str, request=None) -> TokenPair:
    """Exchange a User Token secret for an access and a refresh token of the current tenant."""
    token = _find_by_secret(secret)
    check_usable(token, address=address)
    mark_used(token, address)
    signals.token_exchanged.send(UserToken, user_token=token, request=request)
    return _issue_pair(token)


MAX_JTI_LENGTH = 64  # SpentRefreshToken.jti; simplejwt issues 32 hex characters


def _decode(token_class, raw, *, remembered: bool = False) -> dict:
    """The verified payload of `raw`; `remembered`: its signature checked once per process
    (tokens.jwt.verified_payload), for the access tokens presented on every request."""
    if not isinstance(raw, str) or not raw:
        raise TokenRefused(FailureReason.MALFORMED)
    try:
        payload = verified_payload(token_class, raw) if remembered else token_class(raw).payload
    except TokenError:
        raise TokenRefused(FailureReason.INVALID_JWT) from None
    except (OverflowError, OSError, ValueError, TypeError):
        # Validly signed but with a claim no clock can hold (e.g. exp = 2**62).
        raise TokenRefused(FailureReason.INVALID_JWT) from None
    if payload.get(TENANT_CLAIM) != connection.schema_name:
        raise TokenRefused(FailureReason.WRONG_TENANT)
    # `type() is int`: JSON's true is an int to isinstance(), and True == 1 (the first generation).
    jti = payload.get(api_settings.JTI_CLAIM)
    if (
        type(payload.get(USER_TOKEN_CLAIM)) is not int
        or type(payload.get(GENERATION_CLAIM)) is not int
        or not isinstance(jti, str)
        or not 0 < len(jti) <= MAX_JTI_LENGTH
    ):
        raise TokenRefused(FailureReason.INVALID_JWT)
    return payload


# What authentication reads of a User Token and of its owner: one statement, built once per process
# (the ORM compiled a two-table SELECT with an ORDER BY on every request: ~1 ms of CPU).
TOKEN_FIELDS = frozenset(
    {
        "id",
        "owner_id",
        "name",
        "permissions",
        "expires_at",
        "allowed_ips",
        "is_active",
        "generation",
        "last_four",
        "created_at",
        "last_used_at",
        "last_used_ip",
    }
)


@dataclass(frozen=True)
class RowRead:
    """A row a view reads in the same statement as the request's User Token: `columns` (attnames)
    of the `model` row whose primary key is `pk`. Authentication hands it back as
    `TokenAuth.row`, a dict of those columns, or None when no such row exists."""

    model: type
    columns: tuple[str, ...]
    pk: int


@dataclass(frozen=True)
class _Lookup:
    sql: str
    token_fields: list
    owner_fields: list
    row_fields: list
    converters: list  # per selected column: the fields' from_db_value functions


# The exchange also reads what identifies the secret's hash (a retired key's digest is rehashed).
DIGEST_FIELDS = TOKEN_FIELDS | {"digest", "key_id"}


@functools.cache
def _token_lookup(
    row_model: type | None = None, row_columns: tuple[str, ...] = (), by_digest: bool = False
) -> _Lookup:
    user_model = get_user_model()
    quote = connection.ops.quote_name
    names = DIGEST_FIELDS if by_digest else TOKEN_FIELDS
    token_fields = [f for f in UserToken._meta.concrete_fields if f.attname in names]
    owner_names = {user_model._meta.pk.attname, "is_active", user_model.USERNAME_FIELD}
    owner_fields = [f for f in user_model._meta.concrete_fields if f.attname in owner_names]
    row_fields = [row_model._meta.get_field(name) for name in row_columns] if row_model else []
    owner_fk = UserToken._meta.get_field("owner")
    key = UserToken._meta.get_field("digest") if by_digest else UserToken._meta.pk
    columns = [f"t.{quote(f.column)}" for f in token_fields]
    columns += [f"o.{quote(f.column)}" for f in owner_fields]
    columns += [f"r.{quote(f.column)}" for f in row_fields]
    joined = ""
    if row_model is not None:  # a missing row leaves its columns NULL; the token is still read
        joined = (
            f" LEFT JOIN {quote(row_model._meta.db_table)} r "
            f"ON r.{quote(row_model._meta.pk.column)} = %s"
        )
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(UserToken._meta.db_table)} t "  # noqa: S608
        f"JOIN {quote(user_model._meta.db_table)} o "
        f"ON o.{quote(user_model._meta.pk.column)} = t.{quote(owner_fk.column)}{joined} "
        f"WHERE t.{quote(key.column)} = {'ANY(%s)' if by_digest else '%s'}"
    )
    converters = []
    for field in [*token_fields, *owner_fields, *row_fields]:
        column = field.get_col(field.model._meta.db_table)
        converters.append(
            (
                column,
                connection.ops.get_db_converters(column) + column.get_db_converters(connection),
            )
        )
    return _Lookup(sql, token_fields, owner_fields, row_fields, converters)


def find_token_with_owner(
    token_id: int, row: RowRead | None = None
) -> tuple[UserToken | None, dict | None]:
    """The User Token `token_id` with its owner (`token.owner` costs no query), or None; and, with
    `row`, that row's columns (None when it does not exist), read by the same statement."""
    lookup = _token_lookup(row.model, row.columns) if row else _token_lookup()
    found = _read(lookup, [row.pk, token_id] if row else [token_id])
    return _loaded(lookup, found[0], row) if found else (None, None)


def find_tokens_by_digest(digests: list[str]) -> list[UserToken]:
    """The User Tokens whose digest is one of `digests`, each with its owner (one statement)."""
    lookup = _token_lookup(by_digest=True)
    return [_loaded(lookup, found)[0] for found in _read(lookup, [digests])]


def _read(lookup: _Lookup, params: list) -> list[tuple]:
    with prepared_cursor(router.db_for_read(UserToken)) as cursor:
        use_compiled_timestamps(cursor)
        cursor.execute(lookup.sql, params)
        return cursor.fetchall()


def _loaded(
    lookup: _Lookup, found: tuple, row: RowRead | None = None
) -> tuple[UserToken, dict | None]:
    alias = router.db_for_read(UserToken)
    db = connections[alias]
    values = []
    for value, (column, converters) in zip(found, lookup.converters, strict=True):
        for convert in converters:
            value = convert(value, column, db)
        values.append(value)
    owner_end = len(lookup.token_fields) + len(lookup.owner_fields)
    token = UserToken.from_db(
        alias, [f.attname for f in lookup.token_fields], values[: len(lookup.token_fields)]
    )
    owner = get_user_model().from_db(
        alias,
        [f.attname for f in lookup.owner_fields],
        values[len(lookup.token_fields) : owner_end],
    )
    UserToken.owner.field.set_cached_value(token, owner)
    read = None
    if row is not None:
        read = dict(zip(row.columns, values[owner_end:], strict=True))
        if read[row.model._meta.pk.attname] is None:  # the LEFT JOIN found no such row
            read = None
    return token, read


def _current_token(
    payload: dict, address: str, row: RowRead | None = None
) -> tuple[UserToken, dict | None]:
    token_id = payload[USER_TOKEN_CLAIM]
    token, read = find_token_with_owner(token_id, row)
    if token is None:
        raise TokenRefused(FailureReason.UNKNOWN, token_id)
    if token.generation != payload[GENERATION_CLAIM]:
        raise TokenRefused(FailureReason.REVOKED, token_id)
    check_usable(token, address=address)
    return token, read


def rotate_refresh_token(raw, *, address: str, request=None) -> TokenPair:
    """A new pair for a refresh token, which is spent: presenting it again is refused, and revokes
    the pair issued from it (with every other JWT of the User Token) and raises an alert."""
    payload = _decode(ApiRefreshToken, raw)
    token, _ = _current_token(payload, address)
    try:
        with transaction.atomic():
            SpentRefreshToken.objects.create(
                jti=payload["jti"],
                user_token=token,
                expires_at=datetime.fromtimestamp(
                    payload["exp"], tz=timezone.get_current_timezone()
                ),
            )
    except IntegrityError:
        # Reuse of a spent refresh token: one of the two holders is not the integration, and the
        # pair issued from it may be in the wrong hands. Revoke it (and the token's other JWTs).
        _revoke_jwts(token)
        signals.refresh_token_reused.send(
            UserToken, user_token=token, address=address, request=request
        )
        logger.warning("Spent refresh token of User Token %s presented again", token.pk)
        raise TokenRefused(FailureReason.REFRESH_SPENT, token.pk) from None
    mark_used(token, address)
    signals.token_pair_refreshed.send(UserToken, user_token=token, request=request)
    return _issue_pair(token)


def authenticate_access_token(raw, *, address: str, row: RowRead | None = None) -> TokenAuth:
    """The User Token behind an access token, as it is now (one query, which also reads `row`)."""
    token, read = _current_token(_decode(ApiAccessToken, raw, remembered=True), address, row)
    mark_used(token, address)
    return TokenAuth(user_token=token, permissions=frozenset(token.permissions), row=read)


def mark_used(token: UserToken, address: str) -> None:
    """Record last use; written at most once a minute per token (or when the address changes)."""
    now = timezone.now()
    if (
        token.last_used_at is not None
        and now - token.last_used_at < LAST_USED_RESOLUTION
        and token.last_used_ip == address
    ):
        return
    ip = address if _is_ip(address) else None
    UserToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    token.last_used_at, token.last_used_ip = now, ip


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def prune_spent_refresh_tokens() -> int:
    """Forget spent refresh tokens that have expired anyway."""
    deleted, _ = SpentRefreshToken.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


# --- What an administrator may hand out through the admin (the admin's forms and views call these)

# The Django permissions an admin account needs to grant each token permission: a token can do
# through the API only what whoever creates or refreshes it could do in the admin.
GRANTING_RIGHTS: dict[Permission, tuple[str, ...]] = {
    Permission.VIEW_USERS: ("auth.view_user",),
    Permission.CREATE_USERS: ("auth.add_user",),
    Permission.EDIT_USERS: ("auth.change_user",),
    Permission.DELETE_USERS: ("auth.delete_user",),
    Permission.EDIT_USER_TOKENS: ("tokens.change_usertoken",),
    Permission.VIEW_PRODUCTS: ("licensing.view_product", "licensing.view_plan"),
    Permission.EDIT_PRODUCTS: (
        "licensing.add_product",
        "licensing.change_product",
        "licensing.add_plan",
        "licensing.change_plan",
    ),
    Permission.VIEW_LICENSES: ("licensing.view_license",),
    Permission.EDIT_LICENSES: ("licensing.add_license", "licensing.change_license"),
    Permission.VIEW_CUSTOMERS: ("licensing.view_customer",),
    Permission.CREATE_GROUPS: ("licensing.add_group",),
    Permission.EDIT_GROUPS: ("licensing.change_group",),
    Permission.DELETE_GROUPS: ("licensing.delete_group",),
    Permission.VIEW_WEBHOOKS: ("webhooks.view_webhookendpoint", "webhooks.view_webhookdelivery"),
    Permission.EDIT_WEBHOOKS: (
        "webhooks.add_webhookendpoint",
        "webhooks.change_webhookendpoint",
        "webhooks.delete_webhookendpoint",
    ),
}


def is_administrator(user: AbstractBaseUser) -> bool:
    return bool(user.is_staff or user.is_superuser)


def may_manage_tokens_of(actor: AbstractBaseUser, owner: AbstractBaseUser) -> bool:
    """A staff user creates or refreshes only their own tokens and those of non-staff users;
    a superuser those of anyone."""
    return actor.is_superuser or owner.pk == actor.pk or not is_administrator(owner)


def owners_manageable_by(actor: AbstractBaseUser):
    """The active users of this tenant whose tokens `actor` may create (the add form's owners)."""
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    if actor.is_superuser:
        return users
    return users.filter(Q(pk=actor.pk) | Q(is_staff=False, is_superuser=False))


def ungrantable_permissions(actor: AbstractBaseUser, permissions) -> list[str]:
    """The codes among `permissions` that `actor` lacks the admin rights to grant."""
    return sorted(
        code for code in set(permissions) if not actor.has_perms(GRANTING_RIGHTS[Permission(code)])
    )


def _refuse_ungrantable(actor: AbstractBaseUser, permissions) -> None:
    refused = ungrantable_permissions(actor, permissions)
    if refused:
        labels = ", ".join(Permission(code).label for code in refused)
        raise PermissionDenied(
            f"Your admin account lacks the rights to grant: {labels}. A token can do only what "
            "whoever creates or refreshes it may do in the admin."
        )


def check_admin_grant(actor: AbstractBaseUser, *, owner: AbstractBaseUser, permissions) -> None:
    """Refuse (PermissionDenied) a token `actor` may not create or refresh in the admin: one owned
    by another administrator (unless `actor` is a superuser), or one with permissions beyond
    `actor`'s own admin rights (GRANTING_RIGHTS)."""
    if not may_manage_tokens_of(actor, owner):
        raise PermissionDenied(
            "Only a superuser may create or refresh the tokens of another administrator."
        )
    _refuse_ungrantable(actor, permissions)


def check_admin_change(actor: AbstractBaseUser, *, before, after) -> None:
    """Refuse (PermissionDenied) a change that adds permissions beyond `actor`'s admin rights;
    permissions the token held already are kept whoever edits it."""
    _refuse_ungrantable(actor, set(after) - set(before))
