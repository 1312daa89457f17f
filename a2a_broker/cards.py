"""Agent cards as the broker stores them: fetched verbatim, parsed with the SDK, signatures verified.

The registry keeps a card's text exactly as fetched, so a signed card stays valid when the broker
serves it again. Parsing goes through the SDK's own ProtoJSON reader (`a2a.types.AgentCard`, with its
0.3 compatibility mapping); nothing here redefines a wire type.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import jwt
from a2a.client.card_resolver import parse_agent_card
from a2a.types import AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import ParseError
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError, PyJWTError
from jwt.utils import base64url_decode, base64url_encode

from meshgate.errors import CardInvalid, CardSignatureInvalid, ConfigError
from registry.models import AgentRecord

MAX_CARD_BYTES = 1 << 20
"""A card is a small document; a bigger answer is refused rather than buffered."""

SIGNATURE_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA")
"""Asymmetric JWS algorithms only: `none` and the HMAC family would let anyone holding the key forge a card."""


# fetching and parsing


def card_url(url: str) -> str:
    """A base URL means its well-known card path (A2A §8.2); a URL ending in `.json` is the card itself."""
    from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH

    return url if url.endswith(".json") else url.rstrip("/") + AGENT_CARD_WELL_KNOWN_PATH


def fetch_card(url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> str:
    """GET a card and return its body text verbatim.

    Raises:
        CardInvalid: the URL cannot be reached, answers non-2xx, times out or sends more than 1 MiB.
    """
    try:
        with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False) as client:
            with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                response.raise_for_status()
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_CARD_BYTES:
                        raise CardInvalid(f"the agent card at {url} is larger than {MAX_CARD_BYTES} bytes", url=url)
                return body.decode(response.encoding or "utf-8")
    except httpx.HTTPStatusError as exc:
        raise CardInvalid(f"fetching {url} answered HTTP {exc.response.status_code}", url=url) from exc
    except httpx.HTTPError as exc:
        raise CardInvalid(f"cannot fetch the agent card at {url}: {type(exc).__name__}", url=url) from exc
    except UnicodeDecodeError as exc:
        raise CardInvalid(f"the agent card at {url} is not text", url=url) from exc


def load_card_document(card_json: str) -> dict[str, Any]:
    """The card's JSON object. Raises `CardInvalid` for anything else."""
    try:
        document = json.loads(card_json)
    except json.JSONDecodeError as exc:
        raise CardInvalid(f"the agent card is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(document, dict):
        raise CardInvalid("the agent card is not a JSON object")
    return cast(dict[str, Any], document)


def parse_card(card_json: str) -> AgentCard:
    """Parse a card with the SDK (ProtoJSON; 0.3 top-level `url`/`preferredTransport` are mapped).

    Raises:
        CardInvalid: not JSON, not a card, or without a name or any interface to reach it on.
    """
    try:
        card = parse_agent_card(load_card_document(card_json))
    except ParseError as exc:
        raise CardInvalid("the document is not a valid A2A agent card") from exc
    if not card.name:
        raise CardInvalid("the agent card has no name")
    if not card.supported_interfaces:
        raise CardInvalid("the agent card lists no supportedInterfaces")
    return card


# what discovery filters on


def card_organization(card: AgentCard) -> str:
    """provider.organization, or "" when the card names no provider."""
    return card.provider.organization if card.HasField("provider") else ""


def card_skills(card: AgentCard) -> list[AgentSkill]:
    return list(card.skills)


def card_skill_ids(card: AgentCard) -> list[str]:
    return [skill.id for skill in card.skills]


def card_tags(card: AgentCard) -> list[str]:
    """Every skill's tags, de-duplicated in first-seen order."""
    return list(dict.fromkeys(tag for skill in card.skills for tag in skill.tags))


def card_input_modes(card: AgentCard, skill_id: str | None = None) -> list[str]:
    """The media types the agent (or one skill, which may override the defaults) accepts."""
    skill = _skill(card, skill_id)
    return list(skill.input_modes) if skill is not None and skill.input_modes else list(card.default_input_modes)


def card_output_modes(card: AgentCard, skill_id: str | None = None) -> list[str]:
    skill = _skill(card, skill_id)
    return list(skill.output_modes) if skill is not None and skill.output_modes else list(card.default_output_modes)


def preferred_interface(card: AgentCard, bindings: tuple[str, ...] = ()) -> AgentInterface:
    """The first interface in the card's order (§8.3.2), optionally among `bindings` only.

    Raises:
        CardInvalid: no interface of an acceptable binding.
    """
    for interface in card.supported_interfaces:
        if not bindings or interface.protocol_binding in bindings:
            return interface
    raise CardInvalid(f"the agent card offers none of the bindings {', '.join(bindings)}")


def _skill(card: AgentCard, skill_id: str | None) -> AgentSkill | None:
    return next((s for s in card.skills if s.id == skill_id), None) if skill_id else None


# signed cards (A2A §8.4: JWS, RFC 7515, over the JCS-canonical card without `signatures`)


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    kid: str
    alg: str


def load_jwks(path: str | Path) -> PyJWKSet:
    """Read a JWKS file (`{"keys": [...]}`) of the public keys an operator trusts for one organisation.

    Raises:
        ConfigError: unreadable, not JSON, or no usable key in it.
    """
    try:
        return jwks_from_document(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the JWKS file {path}: {exc}") from exc


def jwks_from_document(document: object) -> PyJWKSet:
    """Raises `ConfigError` for a document that is not a JWKS with at least one usable key."""
    if not isinstance(document, dict) or not isinstance(cast(dict[str, object], document).get("keys"), list):
        raise ConfigError('a JWKS must be a JSON object with a "keys" array')
    try:
        return PyJWKSet.from_dict(cast(dict[str, Any], document))
    except (PyJWKSetError, PyJWKError) as exc:
        raise ConfigError(f"the JWKS has no usable key: {exc}") from exc


def card_has_signatures(card_json: str) -> bool:
    signatures: object = load_card_document(card_json).get("signatures")
    return isinstance(signatures, list) and len(cast(list[object], signatures)) > 0


def canonical_card_payload(card_json: str) -> bytes:
    """The bytes a card's signatures sign: the card as served, `signatures` removed, empty values dropped, JCS.

    Computed from the card text itself rather than from a parsed `AgentCard`, so a field the SDK does
    not know (and would drop on parsing) is still covered. Empty strings, lists and objects are
    dropped the way the SDK's signer drops them (its `_clean_empty`), so SDK-signed cards verify.
    """
    document = load_card_document(card_json)
    document.pop("signatures", None)
    try:
        return _jcs(_drop_empty(document) or {}).encode()
    except (ValueError, TypeError) as exc:
        raise CardSignatureInvalid("the agent card cannot be canonicalized for verification") from exc


def verify_card_signatures(
    card_json: str, keys: PyJWKSet, *, algorithms: tuple[str, ...] = SIGNATURE_ALGORITHMS
) -> list[VerifiedSignature]:
    """Verify a card's JWS signatures against trusted keys; at least one must verify (rotation allows several).

    Each signature's protected header must carry `alg` (one of `algorithms`) and a `kid` found in
    `keys`; `jku` is ignored: keys come from the operator's trust store, never from the card.

    Returns:
        The signatures that verified.

    Raises:
        CardSignatureInvalid: the card has no signatures, or none verifies (tampered, unknown key, bad alg).
    """
    document = load_card_document(card_json)
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise CardSignatureInvalid("the agent card carries no signatures")
    payload = base64url_encode(canonical_card_payload(card_json)).decode()
    verified: list[VerifiedSignature] = []
    problems: list[str] = []
    for entry in cast(list[object], signatures):
        try:
            verified.append(_verify_one(entry, payload, keys, algorithms))
        except _Rejected as exc:
            problems.append(str(exc))
    if not verified:
        raise CardSignatureInvalid("no signature on the agent card verifies: " + "; ".join(problems), reasons=problems)
    return verified


class _Rejected(Exception):
    pass


def _verify_one(entry: object, payload: str, keys: PyJWKSet, algorithms: tuple[str, ...]) -> VerifiedSignature:
    if not isinstance(entry, dict):
        raise _Rejected("a signature is not an object")
    signature = cast(Mapping[str, object], entry)
    protected, value = signature.get("protected"), signature.get("signature")
    if not isinstance(protected, str) or not isinstance(value, str):
        raise _Rejected("a signature lacks `protected` or `signature`")
    try:
        header = json.loads(base64url_decode(protected.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _Rejected("a protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise _Rejected("a protected header is not a JSON object")
    header = cast(dict[str, object], header)
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in algorithms:
        raise _Rejected(f"algorithm {alg!r} is not accepted")
    if not isinstance(kid, str):
        raise _Rejected("a protected header has no `kid`")
    key = _key(keys, kid)
    try:  # PyJWT also refuses an `alg` other than the one the key is bound to (no algorithm confusion).
        jwt.api_jws.decode_complete(f"{protected}.{payload}.{value}", key=key, algorithms=[alg])
    except PyJWTError:
        raise _Rejected(f"signature by {kid!r} does not match the card") from None
    return VerifiedSignature(kid=kid, alg=alg)


def _key(keys: PyJWKSet, kid: str) -> PyJWK:
    try:
        return keys[kid]
    except KeyError:
        raise _Rejected(f"key {kid!r} is not trusted for this organisation") from None


def _drop_empty(value: object) -> object | None:
    if isinstance(value, dict):
        items = cast(dict[str, object], value).items()
        kept = {k: v for k, raw in items if (v := _drop_empty(raw)) is not None}
        return kept or None
    if isinstance(value, list):
        kept_list = [v for raw in cast(list[object], value) if (v := _drop_empty(raw)) is not None]
        return kept_list or None
    if value == "":
        return None
    return value


def _jcs(value: object) -> str:
    # The SDK's RFC 8785 canonicalizer (the one its signer uses) is private; bind to it in one place.
    from a2a.utils._jcs import canonicalize  # pyright: ignore[reportPrivateUsage]

    return canonicalize(value)


# registration: what `meshgate agents add` and the broker's admin API store

AGENT_ID_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"


def agent_record(
    agent_id: str,
    card_json: str,
    *,
    card_url: str = "",
    organization: str = "",
    trusted_keys: Mapping[str, PyJWKSet] | None = None,
    registered_at: str,
) -> AgentRecord:
    """Check a card for registration and build its record; the card text is kept as given.

    A signed card must verify against the keys trusted for its organisation; when keys are trusted
    for that organisation, an unsigned card is refused (an attacker could otherwise strip the signatures).

    Raises:
        ConfigError: a bad agent id, or no organisation on the card and none given.
        CardInvalid: the document is not a usable agent card.
        CardSignatureInvalid: signatures that do not verify, a signed card without trusted keys for its
            organisation, or an unsigned card where keys are trusted.
    """
    if not re.match(AGENT_ID_PATTERN, agent_id):
        raise ConfigError(f"agent id {agent_id!r} must match {AGENT_ID_PATTERN}")
    card = parse_card(card_json)
    org = organization or card_organization(card)
    if not org:
        raise ConfigError(f"the card of {agent_id!r} names no provider.organization; give the organisation")
    keys = (trusted_keys or {}).get(org)
    signed = card_has_signatures(card_json)
    if signed and keys is None:
        raise CardSignatureInvalid(f"the card of {agent_id!r} is signed but no keys are trusted for {org!r}", org=org)
    if keys is not None:
        if not signed:
            raise CardSignatureInvalid(f"keys are trusted for {org!r} but the card of {agent_id!r} is not signed")
        verify_card_signatures(card_json, keys)
    return AgentRecord(
        agent_id=agent_id,
        organization=org,
        card_json=card_json,
        card_url=card_url,
        signed=signed,
        registered_at=registered_at,
    )


class AgentRegistry(Protocol):
    """Where a registration is stored (the registry store satisfies it)."""

    def add_agent(self, record: AgentRecord, *, replace: bool = False) -> None: ...


def register_card(
    store: AgentRegistry,
    agent_id: str,
    card_json: str,
    *,
    card_url: str = "",
    organization: str = "",
    jwks: PyJWKSet | None = None,
    replace: bool = False,
    registered_at: str,
) -> AgentRecord:
    """Check a card (`agent_record`, with `jwks` trusted for its organisation) and store it verbatim.

    The one registration path of `meshgate agents add` and the broker's admin API.

    Raises:
        ConfigError, CardInvalid, CardSignatureInvalid: see `agent_record`; AlreadyExists: the id is
            taken and `replace` is False. Nothing is stored then.
    """
    org = organization or card_organization(parse_card(card_json))
    trusted = {org: jwks} if jwks is not None and org else None
    record = agent_record(
        agent_id,
        card_json,
        card_url=card_url,
        organization=organization,
        trusted_keys=trusted,
        registered_at=registered_at,
    )
    store.add_agent(record, replace=replace)
    return record
