"""Assemble the gateway: registry-backed federation, the policy decision point, audit, the MCP server.

`build_gateway` wires the parts; `Gateway.asgi()` is the Starlette app uvicorn serves: MCP streamable
HTTP at the configured path (both protocol eras the SDK serves) and `/healthz`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.subscriptions import ListenHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import meshgate
from mcp_gateway.auth import AuthenticationMiddleware
from mcp_gateway.federation import Federation
from mcp_gateway.handlers import GatewayHandlers
from mcp_gateway.policy import PolicyMiddleware
from meshgate.config import Config, UpstreamConfig
from meshgate.identity import SERVED_API_KEY_TTL_S, Authenticator, IssuerConfig
from policies import DEFAULT_BUNDLE, PolicyDecisionPoint, PolicyEngine, RegorusEngine
from policies.watcher import BundleWatcher, ReloadableEngine
from registry.audit import AuditLog
from registry.models import UpstreamServer
from registry.store import RegistryStore
from registry.usage import UsageMeter

logger = logging.getLogger(__name__)


@dataclass
class Gateway:
    config: Config
    store: RegistryStore
    federation: Federation
    pdp: PolicyDecisionPoint
    audit: AuditLog
    authenticator: Authenticator
    server: Server[Any]
    meter: UsageMeter
    """Tokens spent through the model tools, per caller (`meshgate usage`); shared with the broker."""
    watchers: dict[str, BundleWatcher] = field(default_factory=dict[str, BundleWatcher])
    """Hot reload of the `live` and `shadow` bundles (empty when `policy.watch` is off)."""

    def asgi(self) -> Starlette:
        gw = self.config.gateway
        mcp_app = self.server.streamable_http_app(
            streamable_http_path=gw.path, max_request_body_size=gw.max_request_bytes, host=gw.host
        )

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncGenerator[None, None]:
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(self.federation.run)
                    for watcher in self.watchers.values():
                        tg.start_soon(watcher.run)
                    async with self.server.session_manager.run():
                        yield
                    tg.cancel_scope.cancel()
            finally:
                self.audit.close()
                self.meter.close()

        app = Starlette(routes=[Route("/healthz", self._health), Mount("/", app=mcp_app)], lifespan=lifespan)
        app.add_middleware(AuthenticationMiddleware, authenticator=self.authenticator, protected_prefix=gw.path)
        return app

    async def _health(self, request: Request) -> JSONResponse:
        upstreams = [asdict(h) for h in self.federation.health()]
        degraded = [u["name"] for u in upstreams if u["state"] != "ready"]
        body: dict[str, Any] = {
            "status": "degraded" if degraded else "ok",
            "version": meshgate.__version__,
            "upstreams": upstreams,
            "catalog": {
                "tools": len(self.federation.catalog.tools),
                "resources": len(self.federation.catalog.resources),
                "prompts": len(self.federation.catalog.prompts),
            },
            "policy": {
                "engine": self.pdp.engine.name,
                "revision": self.pdp.engine.revision,
                "last_reload": self._last_reload("live"),
            },
        }
        if self.config.inference.enabled:  # what the model tools route to: the nodes as registered
            body["nodes"] = [asdict(node) for node in self.store.list_nodes()]
        if self.pdp.shadow is not None:
            shadow = {"revision": self.pdp.shadow.revision, **self.pdp.shadow_stats()}
            body["policy"]["shadow"] = {**shadow, "last_reload": self._last_reload("shadow")}
        # 200 even when degraded: the gateway serves; a degraded upstream is information, not an outage.
        return JSONResponse(body)

    def _last_reload(self, which: str) -> dict[str, Any] | None:
        watcher = self.watchers.get(which)
        outcome = watcher.last_reload if watcher else None
        return asdict(outcome) if outcome else None


def upstream_from_config(u: UpstreamConfig, base_dir: str) -> UpstreamServer:
    return UpstreamServer(
        name=u.name,
        transport=u.transport,
        command=u.command,
        url=u.url,
        env=dict(u.env),
        headers=dict(u.headers),
        launch=u.launch,
        cwd=base_dir,
        prefix=u.prefix,
        timeout_s=u.timeout_s,
        enabled=u.enabled,
    )


def build_gateway(config: Config, store: RegistryStore) -> Gateway:
    """Wire a gateway over `store`. Upstreams from the config are upserted into the registry first.

    Raises:
        PolicyBundleInvalid: the policy bundle does not compile.
    """
    for upstream in config.upstreams:
        store.add_server(upstream_from_config(upstream, config.base_dir), replace=True)
    bundle = Path(config.base_dir, config.policy.bundle) if config.policy.bundle else DEFAULT_BUNDLE
    shadow_bundle = config.policy.shadow_bundle
    shadow = open_engine(config, Path(config.base_dir, shadow_bundle)) if shadow_bundle else None
    pdp = PolicyDecisionPoint(open_engine(config, bundle), query=config.policy.query, shadow=shadow)
    audit = AuditLog(store)
    federation = Federation(
        store.list_servers(),
        store=store,
        base_dir=config.base_dir,
        separator=config.gateway.separator,
        connect_timeout_s=config.gateway.connect_timeout_s,
        refresh_interval_s=config.gateway.refresh_interval_s,
    )
    identity = config.identity
    authenticator = Authenticator(
        [IssuerConfig(**_issuer_kwargs(i.model_dump(), config.base_dir)) for i in identity.issuers],
        store,
        identity.allow_anonymous,
        api_key_ttl_s=SERVED_API_KEY_TTL_S,
    )
    handlers = GatewayHandlers(federation)

    def tool_schema(name: str) -> Mapping[str, Any] | None:
        try:
            return federation.catalog.tool(name).input_schema
        except meshgate.MeshError:
            return None

    server: Server[Any] = Server(
        "meshgate",
        version=meshgate.__version__,
        instructions="meshgate: a governed catalog of tools federated from several MCP servers.",
        get_tool_input_schema=tool_schema,
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_completion=handlers.complete,
        on_read_resource=handlers.read_resource,
        on_list_prompts=handlers.list_prompts,
        on_get_prompt=handlers.get_prompt,
        # 2026-07-28 clients learn of catalog changes on a `subscriptions/listen` stream; the events say only
        # "this list changed", and the refetch that follows is decided and filtered like any list.
        on_subscriptions_listen=ListenHandler(federation.bus),
    )
    meter = UsageMeter(store)
    models = frozenset(m.id for m in config.inference.models if m.tool and config.inference.enabled)
    server.middleware.append(
        PolicyMiddleware(
            federation, pdp, audit, allow_anonymous=identity.allow_anonymous, meter=meter, metered_servers=models
        )
    )
    return Gateway(config, store, federation, pdp, audit, authenticator, server, meter, _watchers(config, pdp))


def _watchers(config: Config, pdp: PolicyDecisionPoint) -> dict[str, BundleWatcher]:
    if not config.policy.watch:
        return {}
    engines = {"live": pdp.engine, "shadow": pdp.shadow}
    watchers: dict[str, BundleWatcher] = {}
    for which, engine in engines.items():
        if isinstance(engine, ReloadableEngine):
            label = "policy" if which == "live" else "shadow policy"
            watchers[which] = BundleWatcher(engine, interval_s=config.policy.watch_interval_s, label=label)
    return watchers


def open_engine(config: Config, bundle: Path) -> PolicyEngine:
    """The configured Rego engine over `bundle`. Raises `PolicyBundleInvalid`, or `ConfigError` (no OPA library)."""
    if config.policy.engine == "opa":
        from policies.opa_engine import OpaEngine  # only deployments that chose OPA load its 32 MB library

        return OpaEngine(bundle, Path(config.base_dir, config.policy.opa_library))
    return RegorusEngine(bundle)


def _issuer_kwargs(raw: dict[str, Any], base_dir: str) -> dict[str, Any]:
    if raw.get("jwks_file"):
        raw["jwks_file"] = str(Path(base_dir, raw["jwks_file"]))
    raw["algorithms"] = tuple(raw["algorithms"])
    return raw
