"""Agent cards: verbatim fetch, SDK parsing, discovery helpers, and JWS-signed cards (A2A §8.4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill
from a2a.utils.signing import create_agent_card_signer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from google.protobuf.json_format import MessageToJson
from jwt.algorithms import ECAlgorithm

from a2a_broker.cards import (
    agent_record,
    canonical_card_payload,
    card_input_modes,
    card_organization,
    card_output_modes,
    card_skill_ids,
    card_tags,
    fetch_card,
    jwks_from_document,
    parse_card,
    preferred_interface,
    verify_card_signatures,
)
from meshgate.errors import CardInvalid, CardSignatureInvalid, ConfigError

NOW = "2025-03-01T12:00:00.000000Z"


def card() -> AgentCard:
    return AgentCard(
        name="ledger",
        description="finance's ledger — quotes in €",
        version="1.0.0",
        provider=AgentProvider(organization="finance", url="https://finance.example"),
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url="http://127.0.0.1:1/a2a/jsonrpc"),
            AgentInterface(protocol_binding="GRPC", protocol_version="1.0", url="127.0.0.1:2"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="currency-quote", name="Quote", description="q", tags=["finance", "quote"]),
            AgentSkill(
                id="transfer-funds",
                name="Transfer",
                description="t",
                tags=["finance", "payments"],
                input_modes=["application/json"],
            ),
        ],
    )


def keypair(kid: str) -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid=kid, alg="ES256", use="sig")
    return private, jwk


def pem(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def signed_card_json(private: ec.EllipticCurvePrivateKey, kid: str, unsigned: AgentCard | None = None) -> str:
    sign = create_agent_card_signer(pem(private), {"alg": "ES256", "kid": kid, "typ": "JOSE", "jku": None})
    return MessageToJson(sign(unsigned or card()), ensure_ascii=False)


def test_parse_card_reads_the_sdk_card_and_its_discovery_fields() -> None:
    parsed = parse_card(MessageToJson(card()))
    assert parsed == card()
    assert card_organization(parsed) == "finance"
    assert card_skill_ids(parsed) == ["currency-quote", "transfer-funds"]
    assert card_tags(parsed) == ["finance", "quote", "payments"]
    assert card_input_modes(parsed) == ["text/plain"]
    assert card_input_modes(parsed, "transfer-funds") == ["application/json"]
    assert card_output_modes(parsed, "transfer-funds") == ["text/plain"]
    assert preferred_interface(parsed).protocol_binding == "JSONRPC"
    assert preferred_interface(parsed, ("GRPC",)).url == "127.0.0.1:2"


def test_a_0_3_card_is_mapped_to_supported_interfaces() -> None:
    legacy: dict[str, object] = {
        "name": "old",
        "description": "d",
        "version": "1",
        "url": "http://127.0.0.1:3/",
        "skills": [],
    }
    assert preferred_interface(parse_card(json.dumps(legacy))).url == "http://127.0.0.1:3/"


@pytest.mark.parametrize(
    "document",
    ["not json", "[1, 2]", '{"name": "x"}', '{"supportedInterfaces": [{"url": "u"}]}', '{"name": 3}'],
)
def test_documents_that_are_not_usable_cards_are_card_invalid(document: str) -> None:
    with pytest.raises(CardInvalid) as caught:
        parse_card(document)
    assert caught.value.code == "card_invalid"


def test_no_interface_of_the_wanted_binding_is_card_invalid() -> None:
    with pytest.raises(CardInvalid):
        preferred_interface(card(), ("HTTP+JSON",))


def test_fetch_card_returns_the_body_verbatim() -> None:
    body = '{ "name" : "ledger",\n  "x": "\\u00e9" }'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=body))
    assert fetch_card("http://127.0.0.1:1/.well-known/agent-card.json", transport=transport) == body


@pytest.mark.parametrize("status", [404, 500])
def test_fetch_card_maps_http_errors_to_card_invalid(status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    with pytest.raises(CardInvalid):
        fetch_card("http://127.0.0.1:1/card.json", transport=transport)


def test_fetch_card_maps_connection_errors_to_card_invalid() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(CardInvalid):
        fetch_card("http://127.0.0.1:1/card.json", transport=httpx.MockTransport(refuse))


def test_a_card_signed_by_the_sdk_verifies_against_the_trusted_jwks() -> None:
    private, jwk = keypair("finance-1")
    text = signed_card_json(private, "finance-1")
    (verified,) = verify_card_signatures(text, jwks_from_document({"keys": [jwk]}))
    assert (verified.kid, verified.alg) == ("finance-1", "ES256")


def test_verification_covers_the_card_text_not_only_what_the_sdk_parses() -> None:
    private, jwk = keypair("finance-1")
    document = json.loads(signed_card_json(private, "finance-1"))
    document["xUnknownField"] = "added later"  # the SDK's parser would drop it silently
    with pytest.raises(CardSignatureInvalid):
        verify_card_signatures(json.dumps(document), jwks_from_document({"keys": [jwk]}))


def test_whitespace_and_key_order_do_not_matter_to_the_canonical_payload() -> None:
    private, _ = keypair("k")
    document = json.loads(signed_card_json(private, "k"))
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=4)
    assert canonical_card_payload(reordered) == canonical_card_payload(json.dumps(document))


def _reword(d: dict[str, Any]) -> None:
    d["description"] = "finance's ledger, now sending funds elsewhere"


def _redirect(d: dict[str, Any]) -> None:
    d["supportedInterfaces"][0]["url"] = "http://evil.example/a2a/jsonrpc"


def _drop_skill(d: dict[str, Any]) -> None:
    d["skills"].pop()


def _change_org(d: dict[str, Any]) -> None:
    d["provider"]["organization"] = "travel"


@pytest.mark.parametrize("tamper", [_reword, _redirect, _drop_skill, _change_org])
def test_a_tampered_signed_card_is_rejected(tamper: Callable[[dict[str, Any]], None]) -> None:
    private, jwk = keypair("finance-1")
    document = json.loads(signed_card_json(private, "finance-1"))
    tamper(document)
    with pytest.raises(CardSignatureInvalid) as caught:
        verify_card_signatures(json.dumps(document), jwks_from_document({"keys": [jwk]}))
    assert caught.value.code == "card_signature_invalid"


def test_a_signature_by_an_untrusted_key_is_rejected() -> None:
    private, _ = keypair("finance-1")
    _, other = keypair("finance-1")  # same kid, different key
    with pytest.raises(CardSignatureInvalid):
        verify_card_signatures(signed_card_json(private, "finance-1"), jwks_from_document({"keys": [other]}))
    _, unknown = keypair("finance-2")
    with pytest.raises(CardSignatureInvalid):
        verify_card_signatures(signed_card_json(private, "finance-1"), jwks_from_document({"keys": [unknown]}))


def test_one_valid_signature_among_several_is_enough_for_key_rotation() -> None:
    old, _ = keypair("old")
    new, new_jwk = keypair("new")
    sign_old = create_agent_card_signer(pem(old), {"alg": "ES256", "kid": "old", "typ": "JOSE", "jku": None})
    sign_new = create_agent_card_signer(pem(new), {"alg": "ES256", "kid": "new", "typ": "JOSE", "jku": None})
    text = MessageToJson(sign_new(sign_old(card())))
    assert [v.kid for v in verify_card_signatures(text, jwks_from_document({"keys": [new_jwk]}))] == ["new"]


def test_an_hmac_or_unsigned_alg_is_not_accepted() -> None:
    header: Any = {"alg": "HS256", "kid": "k", "typ": "JOSE", "jku": None}
    sign = create_agent_card_signer("a-shared-secret-of-at-least-32-bytes!", header)
    jwks = jwks_from_document({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k", "alg": "HS256"}]})
    with pytest.raises(CardSignatureInvalid):
        verify_card_signatures(MessageToJson(sign(card())), jwks)


def test_an_unsigned_card_has_no_signatures_to_verify() -> None:
    _, jwk = keypair("k")
    with pytest.raises(CardSignatureInvalid):
        verify_card_signatures(MessageToJson(card()), jwks_from_document({"keys": [jwk]}))


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"keys": [{"kty": "nope"}]}])
def test_a_bad_jwks_is_a_config_error(document: object) -> None:
    with pytest.raises(ConfigError):
        jwks_from_document(document)


# registration


def test_an_unsigned_card_registers_verbatim_under_its_provider_organization() -> None:
    text = MessageToJson(card(), indent=3)
    record = agent_record("ledger", text, card_url="http://x/card.json", registered_at=NOW)
    assert (record.organization, record.signed, record.card_url) == ("finance", False, "http://x/card.json")
    assert record.card_json is text


def test_a_signed_card_registers_when_it_verifies_for_its_organization() -> None:
    private, jwk = keypair("finance-1")
    trusted = {"finance": jwks_from_document({"keys": [jwk]})}
    record = agent_record("ledger", signed_card_json(private, "finance-1"), trusted_keys=trusted, registered_at=NOW)
    assert record.signed


def test_registration_refuses_bad_signatures_missing_keys_and_stripped_signatures() -> None:
    private, jwk = keypair("finance-1")
    trusted = {"finance": jwks_from_document({"keys": [jwk]})}
    text = signed_card_json(private, "finance-1")
    with pytest.raises(CardSignatureInvalid):  # signed, but nothing trusted for finance
        agent_record("ledger", text, trusted_keys={"travel": trusted["finance"]}, registered_at=NOW)
    with pytest.raises(CardSignatureInvalid):  # keys trusted, signatures stripped
        agent_record("ledger", MessageToJson(card()), trusted_keys=trusted, registered_at=NOW)
    tampered = text.replace("quotes in €", "quotes in $")
    assert tampered != text
    with pytest.raises(CardSignatureInvalid):
        agent_record("ledger", tampered, trusted_keys=trusted, registered_at=NOW)


@pytest.mark.parametrize("agent_id", ["Ledger", "1ledger", "", "a" * 32, "led_ger"])
def test_agent_ids_must_be_short_lowercase_names(agent_id: str) -> None:
    with pytest.raises(ConfigError):
        agent_record(agent_id, MessageToJson(card()), registered_at=NOW)


def test_a_card_without_an_organization_needs_one_given() -> None:
    anonymous = card()
    anonymous.ClearField("provider")
    text = MessageToJson(anonymous)
    with pytest.raises(ConfigError):
        agent_record("ledger", text, registered_at=NOW)
    assert agent_record("ledger", text, organization="finance", registered_at=NOW).organization == "finance"
