from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from meshgate import identity
from meshgate.errors import ConfigError, Unauthenticated
from meshgate.identity import Authenticator, IssuerConfig, new_api_key
from meshgate.principal import ANONYMOUS, Principal
from registry.sqlite_store import SqliteStore

ISS = "https://idp.example"
AUD = "meshgate"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_file(tmp_path: Path) -> str:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**rsa_jwk, "kid": "rsa-1"}, {**ec_jwk, "kid": "ec-1"}]}))
    return str(path)


@pytest.fixture
def auth(jwks_file: str) -> Authenticator:
    return Authenticator([IssuerConfig(issuer=ISS, audience=AUD, jwks_file=jwks_file)], None, allow_anonymous=False)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "tenant": "acme",
        "roles": ["reader", "writer"],
        "exp": int(time.time()) + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], kid: str = "rsa-1", key: Any = RSA_KEY, alg: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def rejection(auth: Authenticator, authorization: str | None, api_key: str | None = None) -> str:
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate(authorization, api_key)
    assert caught.value.code == "unauthenticated"
    if authorization:
        assert authorization.split()[-1] not in str(caught.value)
    return caught.value.detail


def test_a_valid_rs256_token_maps_its_claims_to_a_principal(auth: Authenticator) -> None:
    principal = auth.authenticate(f"Bearer {sign(claims())}", None)
    assert principal == Principal(subject="alice", tenant="acme", roles=("reader", "writer"), issuer=f"jwt:{ISS}")


def test_a_valid_es256_token_is_accepted(auth: Authenticator) -> None:
    token = sign(claims(), kid="ec-1", key=EC_KEY, alg="ES256")
    assert auth.authenticate(f"bearer {token}", None).subject == "alice"


def test_roles_may_be_a_space_separated_string(auth: Authenticator) -> None:
    assert auth.authenticate(f"Bearer {sign(claims(roles='a b'))}", None).roles == ("a", "b")


def test_claim_names_may_be_dotted_paths(jwks_file: str) -> None:
    config = IssuerConfig(
        issuer=ISS, audience=AUD, jwks_file=jwks_file, roles_claim="realm_access.roles", tenant_claim="org"
    )
    auth = Authenticator([config], None, allow_anonymous=False)
    token = sign(claims(tenant=None, roles=None, org="globex", realm_access={"roles": ["admin"]}))
    principal = auth.authenticate(f"Bearer {token}", None)
    assert (principal.tenant, principal.roles) == ("globex", ("admin",))


def test_a_missing_tenant_falls_back_to_the_issuer_default(jwks_file: str) -> None:
    config = IssuerConfig(issuer=ISS, audience=AUD, jwks_file=jwks_file, default_tenant="public")
    auth = Authenticator([config], None, allow_anonymous=False)
    assert auth.authenticate(f"Bearer {sign(claims(tenant=None))}", None).tenant == "public"


def test_a_missing_tenant_without_default_is_rejected(auth: Authenticator) -> None:
    assert "tenant" in rejection(auth, f"Bearer {sign(claims(tenant=None))}")


def test_an_expired_token_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(exp=int(time.time()) - 10))}") == "token expired"


def test_a_token_for_another_audience_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(aud='someone-else'))}") == "token audience does not match"


def test_a_token_without_audience_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(aud=None))}") == "token lacks the required 'aud' claim"


def test_a_token_without_exp_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(exp=None))}") == "token lacks the required 'exp' claim"


def test_an_unknown_issuer_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(iss='https://evil.example'))}") == "unknown token issuer"


def test_an_unknown_kid_is_rejected(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(), kid='rotated-away')}") == "unknown signing key (kid)"


def test_a_tampered_payload_fails_the_signature(auth: Authenticator) -> None:
    header, _, signature = sign(claims()).split(".")
    forged = base64url_encode(json.dumps(claims(roles=["admin"])).encode()).decode()
    assert rejection(auth, f"Bearer {header}.{forged}.{signature}") == "bad token signature"


def test_a_token_signed_by_another_key_under_a_known_kid_fails_the_signature(auth: Authenticator) -> None:
    assert rejection(auth, f"Bearer {sign(claims(), key=OTHER_RSA_KEY)}") == "bad token signature"


def test_an_algorithm_outside_the_allowed_list_is_rejected(auth: Authenticator) -> None:
    token = jwt.encode(claims(), "a-shared-secret-of-sufficient-length!", algorithm="HS256", headers={"kid": "rsa-1"})
    assert rejection(auth, f"Bearer {token}") == "token algorithm not allowed"


def test_garbage_is_a_malformed_token(auth: Authenticator) -> None:
    assert rejection(auth, "Bearer not.a.jwt") == "malformed token"


def test_a_non_bearer_scheme_is_rejected(auth: Authenticator) -> None:
    assert "Bearer" in rejection(auth, "Basic YWxpY2U6c2VjcmV0")


def test_no_credentials_are_rejected_unless_anonymous_is_allowed(jwks_file: str) -> None:
    closed = Authenticator([], None, allow_anonymous=False)
    with pytest.raises(Unauthenticated):
        closed.authenticate(None, None)
    assert Authenticator([], None, allow_anonymous=True).authenticate(None, "") is ANONYMOUS


def test_bad_credentials_are_rejected_even_when_anonymous_is_allowed(jwks_file: str) -> None:
    auth = Authenticator([IssuerConfig(issuer=ISS, audience=AUD, jwks_file=jwks_file)], None, allow_anonymous=True)
    assert rejection(auth, f"Bearer {sign(claims(aud='x'))}") == "token audience does not match"


def test_an_issuer_needs_exactly_one_key_source(jwks_file: str) -> None:
    with pytest.raises(ConfigError):
        Authenticator([IssuerConfig(issuer=ISS, audience=AUD)], None, allow_anonymous=False)
    with pytest.raises(ConfigError):
        both = IssuerConfig(issuer=ISS, audience=AUD, jwks_file=jwks_file, jwks_url="https://idp.example/jwks")
        Authenticator([both], None, allow_anonymous=False)


def test_an_unreadable_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Authenticator([IssuerConfig(ISS, AUD, jwks_file=str(tmp_path / "missing.json"))], None, allow_anonymous=False)


def counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real: Callable[..., dict[str, Any]] = identity.jwt.decode

    def decode(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(identity.jwt, "decode", decode)
    return calls


def test_a_repeated_token_is_verified_once(jwks_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator([IssuerConfig(ISS, AUD, jwks_file=jwks_file)], None, allow_anonymous=False)
    token = sign(claims())
    calls = counting_decode(monkeypatch)
    first = auth.authenticate(f"Bearer {token}", None)
    verifications = len(calls)
    assert auth.authenticate(f"Bearer {token}", None) == first
    assert len(calls) == verifications


def test_a_cached_token_is_verified_again_after_its_exp(jwks_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    auth = Authenticator(
        [IssuerConfig(ISS, AUD, jwks_file=jwks_file)], None, allow_anonymous=False, clock=lambda: now[0]
    )
    token = sign(claims(exp=int(now[0]) + 60))
    calls = counting_decode(monkeypatch)
    auth.authenticate(f"Bearer {token}", None)
    verifications = len(calls)
    now[0] += 120
    auth.authenticate(f"Bearer {token}", None)  # still valid by the real clock PyJWT reads
    assert len(calls) == 2 * verifications


def test_the_token_cache_is_bounded(jwks_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator([IssuerConfig(ISS, AUD, jwks_file=jwks_file)], None, allow_anonymous=False, cache_size=2)
    tokens = [sign(claims(sub=f"agent-{i}")) for i in range(3)]
    for token in tokens:
        auth.authenticate(f"Bearer {token}", None)
    calls = counting_decode(monkeypatch)
    auth.authenticate(f"Bearer {tokens[2]}", None)
    assert calls == []
    auth.authenticate(f"Bearer {tokens[0]}", None)  # evicted as least recently used
    assert calls != []


# API keys


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = SqliteStore(":memory:")
    yield store
    store.close()


def test_an_api_key_in_the_x_api_key_header_authenticates(store: SqliteStore) -> None:
    record, token = new_api_key("acme", "ci-bot", ["deployer"])
    store.add_api_key(record)
    auth = Authenticator([], store, allow_anonymous=False)
    assert auth.authenticate(None, token) == Principal("ci-bot", "acme", ("deployer",), issuer="apikey")


def test_an_api_key_as_a_bearer_token_authenticates(store: SqliteStore) -> None:
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    assert Authenticator([], store, allow_anonymous=False).authenticate(f"Bearer {token}", None).issuer == "apikey"


def test_the_plaintext_secret_is_not_stored(store: SqliteStore) -> None:
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    assert token.startswith(f"mgk_{record.key_id}_")
    secret = token.removeprefix(f"mgk_{record.key_id}_")
    assert len(secret) >= 40
    assert secret not in repr(store.find_api_key(record.key_id))


def test_a_revoked_api_key_is_rejected(store: SqliteStore) -> None:
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    store.revoke_api_key(record.key_id)
    assert rejection(Authenticator([], store, allow_anonymous=True), None, token) == "API key revoked"


def test_a_revocation_takes_effect_once_the_cached_lookup_expires(store: SqliteStore) -> None:
    now = [1000.0]
    auth = Authenticator([], store, allow_anonymous=False, api_key_ttl_s=1.0, clock=lambda: now[0])
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    assert auth.authenticate(None, token).subject == "ci-bot"
    store.revoke_api_key(record.key_id)
    assert auth.authenticate(None, token).subject == "ci-bot"  # within the documented window
    now[0] += 1.0
    assert rejection(auth, None, token) == "API key revoked"
    assert rejection(auth, None, token) == "API key revoked"  # a refusal is never cached as a pass


def test_a_cached_api_key_still_needs_its_own_secret(store: SqliteStore) -> None:
    auth = Authenticator([], store, allow_anonymous=False, api_key_ttl_s=60.0)
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    auth.authenticate(f"Bearer {token}", None)
    assert rejection(auth, None, token[:-1] + ("A" if token[-1] != "A" else "B")) == "wrong API key secret"


def test_a_wrong_secret_is_rejected(store: SqliteStore) -> None:
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    assert rejection(Authenticator([], store, allow_anonymous=False), None, token + "x") == "wrong API key secret"


def test_an_unknown_key_id_is_rejected(store: SqliteStore) -> None:
    _, token = new_api_key("acme", "ci-bot", [])
    assert rejection(Authenticator([], store, allow_anonymous=False), None, token) == "unknown API key"


def test_a_malformed_api_key_is_rejected(store: SqliteStore) -> None:
    assert rejection(Authenticator([], store, allow_anonymous=False), None, "mgk_nosecret") == "malformed API key"


def test_api_keys_need_a_store() -> None:
    _, token = new_api_key("acme", "ci-bot", [])
    assert rejection(Authenticator([], None, allow_anonymous=False), None, token) == "API keys are not enabled"


def test_the_authorization_header_wins_over_the_api_key(store: SqliteStore, auth: Authenticator) -> None:
    record, token = new_api_key("acme", "ci-bot", [])
    store.add_api_key(record)
    assert auth.authenticate(f"Bearer {sign(claims())}", token).issuer == f"jwt:{ISS}"
