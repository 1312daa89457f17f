"""Who is calling: turns an Authorization header or an API key into a `Principal`.

Pure identity, no HTTP framework: the adapters pass the header values in and map `Unauthenticated`.
JWTs are verified against configured issuers' JWKS; API keys (`mgk_<key_id>_<secret>`) against the
registry, which stores only the secret's sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jwt

from meshgate.errors import ConfigError, Unauthenticated
from meshgate.principal import ANONYMOUS, Principal
from registry.clock import utc_now
from registry.models import ApiKey
from registry.store import RegistryStore

API_KEY_PREFIX = "mgk_"
SERVED_API_KEY_TTL_S = 1.0
"""How long the gateway and the broker reuse an API key's lookup: a revocation takes effect within this."""


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """A trusted token issuer; exactly one of `jwks_file` and `jwks_url` gives its signing keys.

    Claim names may be dotted paths into nested objects (`realm_access.roles`).
    """

    issuer: str
    audience: str
    jwks_file: str = ""
    jwks_url: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    subject_claim: str = "sub"
    default_tenant: str = ""


def new_api_key(tenant: str, subject: str, roles: Sequence[str]) -> tuple[ApiKey, str]:
    """A fresh key record (to store) and its token `mgk_<key_id>_<secret>` (to show once, never stored)."""
    key_id = secrets.token_hex(8)  # hex: never contains the `_` that separates it from the secret
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id,
        tenant=tenant,
        subject=subject,
        roles=tuple(roles),
        secret_hash=_sha256(secret),
        created_at=utc_now(),
    )
    return record, f"{API_KEY_PREFIX}{key_id}_{secret}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Issuer:
    """One configured issuer with its key source: a JWKS file read once, or a cached JWKS URL client."""

    def __init__(self, config: IssuerConfig) -> None:
        self.config = config
        self._keys: jwt.PyJWKSet | None = None
        self._client: jwt.PyJWKClient | None = None
        if bool(config.jwks_file) == bool(config.jwks_url):
            raise ConfigError(f"issuer {config.issuer!r}: set exactly one of jwks_file or jwks_url")
        if config.jwks_file:
            try:
                self._keys = jwt.PyJWKSet.from_json(Path(config.jwks_file).read_text(encoding="utf-8"))
            except (OSError, jwt.PyJWKSetError, ValueError) as exc:
                raise ConfigError(f"issuer {config.issuer!r}: cannot load JWKS file {config.jwks_file}: {exc}") from exc
        else:
            # cache_keys keeps resolved keys; the JWKS document is refetched after `lifespan` seconds
            # or when an unknown kid appears (rotation), rate-limited by PyJWKClient's cooldown.
            self._client = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def signing_key(self, kid: str | None) -> jwt.PyJWK:
        if self._client is not None:
            if kid is None:
                raise Unauthenticated("token header has no kid")
            try:
                return self._client.get_signing_key(kid)
            except jwt.PyJWKClientConnectionError as exc:
                raise Unauthenticated(f"cannot fetch the signing keys of issuer {self.config.issuer!r}") from exc
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated("unknown signing key (kid)") from exc
        assert self._keys is not None
        if kid is None:
            if len(self._keys.keys) == 1:
                return self._keys.keys[0]
            raise Unauthenticated("token header has no kid")
        try:
            return self._keys[kid]
        except KeyError:
            raise Unauthenticated("unknown signing key (kid)") from None


class Authenticator:
    """Authenticates requests by JWT (configured issuers), API key (the registry) or not at all."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        store: RegistryStore | None,
        allow_anonymous: bool,
        *,
        cache_size: int = 4096,
        api_key_ttl_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`api_key_ttl_s` > 0 reuses a valid API key's lookup for that long (a revocation waits as long).

        Raises `ConfigError` for an issuer without exactly one key source or with an unreadable JWKS file.
        """
        self._issuers = {c.issuer: _Issuer(c) for c in issuers}
        self._store = store
        self._allow_anonymous = allow_anonymous
        self._clock = clock
        # Verifying a signature costs ~100 µs of CPU per request, and an agent reuses one token for many
        # calls; caching the verified principal until `exp` makes repeat calls a dict lookup. Bounded LRU
        # so a flood of distinct tokens cannot grow memory. Keyed by hash so no token is held in memory.
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._api_key_ttl_s = api_key_ttl_s

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        """The principal for these credentials. `Authorization` wins when both are given.

        Args:
            authorization: the `Authorization` header: `Bearer <jwt>` or `Bearer mgk_...`.
            api_key: the `X-API-Key` header: `mgk_...`.

        Raises:
            Unauthenticated: bad, expired or unknown credentials, or none when anonymous access is off.
        """
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer":
                raise Unauthenticated("unsupported authorization scheme; use Bearer")
            if not token:
                raise Unauthenticated("empty bearer token")
            if token.startswith(API_KEY_PREFIX):
                return self._api_key(token)
            return self._jwt(token)
        if api_key:
            return self._api_key(api_key.strip())
        if self._allow_anonymous:
            return ANONYMOUS
        raise Unauthenticated("no credentials: send a bearer token or an API key")

    # API keys
    def _api_key(self, token: str) -> Principal:
        if not token.startswith(API_KEY_PREFIX):
            raise Unauthenticated("malformed API key")
        key_id, _, secret = token.removeprefix(API_KEY_PREFIX).partition("_")
        if not key_id or not secret:
            raise Unauthenticated("malformed API key")
        if self._store is None:
            raise Unauthenticated("API keys are not enabled")
        # A registry read per request (and a wait on the audit writer's lock) for the same few keys: a valid
        # key is remembered briefly, keyed by the whole token's hash, so a wrong secret never matches.
        digest = _sha256(token)
        cached = self._cached(digest) if self._api_key_ttl_s > 0 else None
        if cached is not None:
            return cached
        record = self._store.find_api_key(key_id)
        if record is None:
            raise Unauthenticated("unknown API key")
        if not hmac.compare_digest(_sha256(secret), record.secret_hash):
            raise Unauthenticated("wrong API key secret")
        # Checked after the secret so only the key's holder learns that it was revoked.
        if record.revoked:
            raise Unauthenticated("API key revoked")
        principal = Principal(subject=record.subject, tenant=record.tenant, roles=record.roles, issuer="apikey")
        if self._api_key_ttl_s > 0:
            self._remember(digest, principal, self._clock() + self._api_key_ttl_s)
        return principal

    # JWTs
    def _jwt(self, token: str) -> Principal:
        digest = _sha256(token)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        principal, exp = self._verify(token)
        self._remember(digest, principal, exp)
        return principal

    # The cache of authenticated credentials, by the sha256 of the token
    def _cached(self, digest: str) -> Principal | None:
        now = self._clock()
        with self._cache_lock:
            hit = self._cache.get(digest)
            if hit is None:
                return None
            if hit[1] > now:
                self._cache.move_to_end(digest)
                return hit[0]
            del self._cache[digest]
            return None

    def _remember(self, digest: str, principal: Principal, until: float) -> None:
        if until <= self._clock():
            return
        with self._cache_lock:
            self._cache[digest] = (principal, until)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise Unauthenticated("token has no issuer (iss)")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise Unauthenticated("unknown token issuer")
        kid = header.get("kid")
        key = issuer.signing_key(kid if isinstance(kid, str) else None)
        config = issuer.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_describe(exc)) from None
        return _principal(claims, config), float(claims["exp"])


def _describe(exc: jwt.PyJWTError) -> str:
    """A precise reason that never quotes the token."""
    match exc:
        case jwt.ExpiredSignatureError():
            return "token expired"
        case jwt.ImmatureSignatureError():
            return "token not yet valid"
        case jwt.InvalidAudienceError():
            return "token audience does not match"
        case jwt.InvalidIssuerError():
            return "token issuer does not match"
        case jwt.MissingRequiredClaimError(claim=claim):
            return f"token lacks the required {claim!r} claim"
        case jwt.InvalidAlgorithmError():
            return "token algorithm not allowed"
        case jwt.InvalidSignatureError():
            return "bad token signature"
        case jwt.InvalidIssuedAtError():
            return "token issued-at (iat) is invalid"
        case jwt.DecodeError():
            return "malformed token"
        case _:
            return "invalid token"


def _claim(claims: Mapping[str, Any], name: str) -> object:
    if name in claims:
        return claims[name]
    value: object = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = cast(Mapping[str, object], value).get(part)
    return value


def _principal(claims: Mapping[str, Any], config: IssuerConfig) -> Principal:
    subject = _claim(claims, config.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated(f"token has no subject claim {config.subject_claim!r}")
    tenant = _claim(claims, config.tenant_claim)
    if tenant is None or tenant == "":
        tenant = config.default_tenant
    if not isinstance(tenant, str):
        raise Unauthenticated(f"token tenant claim {config.tenant_claim!r} is not a string")
    if not tenant:
        raise Unauthenticated(f"token has no tenant claim {config.tenant_claim!r} and the issuer has no default")
    return Principal(
        subject=subject, tenant=tenant, roles=_roles(claims, config.roles_claim), issuer=f"jwt:{config.issuer}"
    )


def _roles(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _claim(claims, name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        items = cast(list[object], value)
        roles = tuple(r for r in items if isinstance(r, str))
        if len(roles) == len(items):
            return roles
    raise Unauthenticated(f"token roles claim {name!r} must be a list of strings or a space-separated string")
