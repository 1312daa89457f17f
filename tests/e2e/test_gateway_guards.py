"""Identity, size limits, fail-closed policy and tracing at the gateway's socket."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp.shared.exceptions import MCPError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp_gateway.policy import DECISION_META_KEY
from registry.models import AuditQuery
from tests.e2e.gateway_harness import config_for, echo_upstream, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ISSUER = "https://idp.acme.test/"


def rsa_issuer(tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    issuer = {"issuer": ISSUER, "audience": "meshgate", "jwks_file": str(tmp_path / "jwks.json")}
    return key, issuer


def token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "meshgate", "sub": "carol", "tenant": "acme", "iat": now, "exp": now + 300} | claims
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


async def test_requests_without_credentials_get_401_when_anonymous_is_off(tmp_path: Path) -> None:
    config = config_for(tmp_path, [echo_upstream()], identity={"allow_anonymous": False})
    async with running_gateway(config, tmp_path / "r.db") as gw:
        async with httpx2.AsyncClient() as http:
            response = await http.post(
                gw.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"accept": "application/json, text/event-stream"},
            )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["data"]["code"] == "unauthenticated"


async def test_a_jwt_from_a_configured_issuer_maps_to_subject_tenant_and_roles(tmp_path: Path) -> None:
    key, issuer = rsa_issuer(tmp_path)
    config = config_for(tmp_path, [echo_upstream()], identity={"allow_anonymous": False, "issuers": [issuer]})
    async with running_gateway(config, tmp_path / "r.db") as gw:
        async with gw.client(token(key, roles=["admin"])) as client:
            result = await client.call_tool("echo_echo", {"text": "hi"})
        async with httpx2.AsyncClient() as http:
            expired = await http.post(
                gw.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"authorization": f"Bearer {token(key, exp=1)}"},
            )
        assert result.meta is not None
        gw.gateway.audit.flush()
        (record,) = gw.store.query_audit(AuditQuery(decision_id=result.meta[DECISION_META_KEY]))
    assert (record.subject, record.tenant, record.allow) == ("carol", "acme", True)
    assert expired.status_code == 401


async def test_a_request_over_the_size_limit_is_refused_and_the_gateway_keeps_serving(tmp_path: Path) -> None:
    config = config_for(tmp_path, [echo_upstream()], gateway={"max_request_bytes": 4096})
    async with running_gateway(config, tmp_path / "r.db") as gw:
        async with gw.client(gw.api_key("acme", "root", ["admin"])) as client:
            with pytest.raises(MCPError):
                await client.call_tool("echo_echo", {"text": "x" * 10_000})
            assert not (await client.call_tool("echo_echo", {"text": "small"})).is_error
        async with httpx2.AsyncClient() as http:
            raw = await http.post(
                gw.url,
                content=b"[" + b" " * 10_000 + b"]",
                headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
            )
    assert raw.status_code == 413


CONFLICTING_POLICY = """package meshgate.mcp

# Lists are allowed; a tools/call produces two different decisions: an evaluation error.
decision := {"allow": true, "reasons": ["list"], "obligations": {"visible": input.resource.items}} if {
\tinput.action != "mcp.tools/call"
}

decision := {"allow": true, "reasons": ["a"], "obligations": {}} if input.action == "mcp.tools/call"

decision := {"allow": false, "reasons": ["b"], "obligations": {}} if input.action == "mcp.tools/call"
"""

UNDEFINED_POLICY = """package meshgate.mcp

decision := {"allow": true, "reasons": ["list"], "obligations": {"visible": input.resource.items}} if {
\tinput.action != "mcp.tools/call"
}
"""


@pytest.mark.parametrize("policy", [CONFLICTING_POLICY, UNDEFINED_POLICY], ids=["engine-error", "undefined"])
async def test_an_engine_error_or_undefined_decision_denies_the_call(tmp_path: Path, policy: str) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "rego").mkdir(parents=True)
    (bundle / "data").mkdir()
    (bundle / "rego" / "mcp.rego").write_text(policy)
    config = config_for(tmp_path, [echo_upstream()], policy={"bundle": str(bundle)})
    async with running_gateway(config, tmp_path / "r.db") as gw:
        async with gw.client() as client:
            assert [t.name for t in (await client.list_tools()).tools]
            with pytest.raises(MCPError) as info:
                await client.call_tool("echo_echo", {"text": "hi"})
    assert info.value.code == -32031
    data = info.value.data
    assert isinstance(data, dict) and data["code"] == "policy_unavailable"  # pyright: ignore[reportUnknownMemberType]


async def test_one_trace_links_the_inbound_call_the_decision_and_the_upstream_call(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    config = config_for(tmp_path, [echo_upstream()])
    async with running_gateway(config, tmp_path / "r.db") as gw:
        async with gw.client(gw.api_key("acme", "root", ["admin"])) as client:
            result = await client.call_tool("echo_echo", {"text": "traced"})
    assert result.meta is not None
    decision_id = result.meta[DECISION_META_KEY]
    finished = spans.get_finished_spans()
    inbound = next(s for s in finished if s.name == "tools/call echo_echo")
    decide = next(
        s
        for s in finished
        if s.name == "policy.decide"
        and s.attributes is not None
        and s.attributes.get("policy.decision_id") == decision_id
    )
    upstream = next(s for s in finished if s.name == "upstream tools/call echo")
    assert inbound.attributes is not None and inbound.attributes["policy.decision_id"] == decision_id
    assert inbound.context is not None and decide.context is not None and upstream.context is not None
    assert {decide.context.trace_id, upstream.context.trace_id} == {inbound.context.trace_id}
    assert decide.parent is not None and decide.parent.span_id == inbound.context.span_id
    assert upstream.parent is not None and upstream.parent.span_id == inbound.context.span_id
