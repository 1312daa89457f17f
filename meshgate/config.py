"""Static configuration: one frozen pydantic model, loaded from YAML or TOML by a pure `load_config`.

Only `meshgate/__main__.py` passes the process environment; everything else receives a `Config`. Dynamic data (the
catalog, tools, keys) lives in the registry, not here. Upstreams listed here are upserted into the
registry at start, beside those added with `meshgate servers add`.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meshgate.errors import ConfigError

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
"""Server names: short, lowercase, no `_` or `+` so namespaced ids split back unambiguously."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8900, ge=0, le=65535)
    path: str = "/mcp"
    separator: str = Field(default="_", pattern=r"^[A-Za-z0-9_.-]{1,3}$")
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    call_timeout_s: float = Field(default=30.0, gt=0)
    refresh_interval_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)


class RegistryConfig(_Model):
    url: str = "sqlite:///.meshgate/registry.db"


class PolicyConfig(_Model):
    bundle: str | None = None
    """Directory holding rego/ and data/; None means the bundle shipped in the `policies` package."""
    query: str = "data.meshgate.mcp.decision"
    watch: bool = True
    """Hot reload: serve edits to the bundle (and the shadow bundle) once they load and their tests pass."""
    watch_interval_s: float = Field(default=0.25, gt=0)
    shadow_bundle: str | None = None
    """A draft bundle decided beside the live one on live traffic; differences are logged, never enforced."""
    engine: Literal["regorus", "opa"] = "regorus"
    """regorus: the embedded Rust engine; opa: OPA's Go evaluator in-process (scripts/fetch_opa.py fetches it)."""
    opa_library: str = ".meshgate/opa/libopabridge.so"


class IssuerModel(_Model):
    issuer: str
    audience: str
    jwks_file: str = ""
    jwks_url: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    subject_claim: str = "sub"
    default_tenant: str = ""

    @model_validator(mode="after")
    def _one_key_source(self) -> IssuerModel:
        if bool(self.jwks_file) == bool(self.jwks_url):
            raise ValueError("set exactly one of jwks_file or jwks_url")
        return self


class IdentityConfig(_Model):
    allow_anonymous: bool = False
    issuers: tuple[IssuerModel, ...] = ()


class TelemetryConfig(_Model):
    exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "meshgate"


class UpstreamConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    transport: Literal["stdio", "http"]
    command: tuple[str, ...] = ()
    url: str = ""
    launch: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict[str, str])
    headers: dict[str, str] = Field(default_factory=dict[str, str])
    prefix: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _transport_fields(self) -> UpstreamConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio upstream needs `command`")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError("an http upstream needs `url` (http:// or https://)")
        return self


class BrokerConfig(_Model):
    """The A2A broker (`a2a_broker/`); `meshgate up` starts it beside the gateway when enabled."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8901, ge=0, le=65535)
    path: str = "/a2a"
    """Prefix of the bindings: JSON-RPC at `{path}/jsonrpc`, HTTP+JSON at `{path}/rest`."""
    public_url: str = ""
    """Base URL the broker's card advertises; "" means http://host:port as bound."""
    query: str = "data.meshgate.a2a.decision"
    relay_timeout_s: float = Field(default=30.0, gt=0)
    """Deadline for a target's answer to a blocking call, and for each event of a relayed stream."""
    credentials: dict[str, dict[str, str]] = Field(default_factory=dict[str, dict[str, str]])
    """agent id -> the HTTP headers the broker sends to that target (its own credentials, never the caller's)."""
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """The gRPC binding (on `host`, plaintext): None is off, 0 a free port; the card lists it when served."""
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    """A message whose parts (compact A2A JSON) are larger is refused (-32035) before any policy decision."""


class AgentKeyConfig(_Model):
    """The identity a launched agent acts as at the broker: `meshgate up` mints an API key for it at start."""

    tenant: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    roles: tuple[str, ...] = ()


class AgentConfig(_Model):
    """An A2A agent the broker registers at start (and launches first when it has a `launch` command).

    A launched agent gets a minimal environment plus `env`, and `MESHGATE_BROKER_URL` (the broker's base
    URL as bound); with `broker_key`, also `MESHGATE_BROKER_KEY`: an API key for that identity, created
    when the agent is launched and revoked when meshgate stops, so no secret lives in this file.
    """

    id: str = Field(pattern=NAME_PATTERN)
    card_url: str
    """The agent's card, or its base URL (then the well-known path `/.well-known/agent-card.json`)."""
    launch: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict[str, str])
    organization: str = ""
    """Its organisation; "" means the card's provider.organization."""
    broker_key: AgentKeyConfig | None = None
    start_timeout_s: float = Field(default=30.0, gt=0)
    """How long a launched agent may take to serve its card before it is reported down (and still awaited)."""
    enabled: bool = True

    @field_validator("card_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("card_url must be an http:// or https:// URL")
        return url


class InferenceNodeConfig(_Model):
    """A node `meshgate up` launches (`meshgate node`): one model on one engine, registered in the registry."""

    name: str = Field(pattern=NAME_PATTERN)
    model: str = Field(default="smollm2", pattern=NAME_PATTERN)
    engine: Literal["llama.cpp", "vllm"] = "llama.cpp"
    weights: str = ""
    """A GGUF file (llama.cpp) or a model directory (vLLM); "" = the model's built-in weights (smollm2)."""
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    """Its gRPC port; 0 picks a free one (the node registers the address it bound)."""
    capacity: int = Field(default=1, ge=1)
    enabled: bool = True


class ModelFrontConfig(_Model):
    """How a model served by the nodes shows up in the mesh: tool `<id>_generate` and A2A agent `<id>`."""

    id: str = Field(pattern=NAME_PATTERN)
    tool: bool = True
    """Federate it in the gateway as upstream `<id>` (stdio), tool `generate`."""
    agent_port: int | None = Field(default=None, ge=1, le=65535)
    """Register it with the broker as agent `<id>`, served on this port; None: no agent."""
    organization: str = "meshgate"
    """The agent card's provider organisation: what the A2A policy's grants name."""


class InferenceConfig(_Model):
    """Inference nodes (`inference_node/`): `meshgate up` launches `nodes`, and fronts each of `models`."""

    enabled: bool = False
    routing: Literal["affinity", "round-robin"] = "affinity"
    balance_threshold: float = Field(default=0.5, ge=0)
    """Affinity yields to the least-loaded node when the favoured one is this much more loaded (load: share
    of capacity)."""
    stale_after_s: float = Field(default=15.0, gt=0)
    """A node whose last heartbeat is older leaves the rotation."""
    chunk_timeout_s: float = Field(default=30.0, gt=0)
    """The longest wait for a node's next chunk before it counts as failed (a request never hangs)."""
    nodes: tuple[InferenceNodeConfig, ...] = ()
    models: tuple[ModelFrontConfig, ...] = ()

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, nodes: tuple[InferenceNodeConfig, ...]) -> tuple[InferenceNodeConfig, ...]:
        names = [n.name for n in nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate node names: {', '.join(dupes)}")
        return nodes


class Config(_Model):
    gateway: GatewayConfig = GatewayConfig()
    broker: BrokerConfig = BrokerConfig()
    registry: RegistryConfig = RegistryConfig()
    policy: PolicyConfig = PolicyConfig()
    identity: IdentityConfig = IdentityConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    upstreams: tuple[UpstreamConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    """A2A agents registered (and launched) by the broker at start; ignored while `broker.enabled` is false."""
    inference: InferenceConfig = InferenceConfig()
    base_dir: str = ""
    """Directory relative paths are resolved against: the config file's directory."""

    @field_validator("upstreams")
    @classmethod
    def _unique_names(cls, upstreams: tuple[UpstreamConfig, ...]) -> tuple[UpstreamConfig, ...]:
        names = [u.name for u in upstreams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate upstream names: {', '.join(dupes)}")
        return upstreams

    @field_validator("agents")
    @classmethod
    def _unique_agent_ids(cls, agents: tuple[AgentConfig, ...]) -> tuple[AgentConfig, ...]:
        ids = [a.id for a in agents]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate agent ids: {', '.join(dupes)}")
        return agents


# Environment overrides: the only place env vars map onto config keys (documented in the README).
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "MESHGATE_GATEWAY_HOST": ("gateway", "host"),
    "MESHGATE_GATEWAY_PORT": ("gateway", "port"),
    "MESHGATE_REGISTRY_URL": ("registry", "url"),
    "MESHGATE_POLICY_BUNDLE": ("policy", "bundle"),
    "MESHGATE_TELEMETRY_EXPORTER": ("telemetry", "exporter"),
    "MESHGATE_TELEMETRY_OTLP_ENDPOINT": ("telemetry", "otlp_endpoint"),
}


def load_config(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Read, override from the environment, and validate a config file.

    `path=None` gives the embedded defaults (no upstreams). Relative paths inside the file resolve
    against the file's directory.

    Raises:
        ConfigError: the file is missing or unreadable, or a key is invalid; the message names the key.
    """
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        raw = _read(path)
        base_dir = path.resolve().parent
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in environ:
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{section}: expected a mapping")
            raw[section][key] = environ[var]
    raw["base_dir"] = str(base_dir)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(where + "; ".join(_describe(e) for e in exc.errors())) from None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return dict(data)  # pyright: ignore[reportUnknownArgumentType]


def _describe(error: Any) -> str:
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = error["msg"].removeprefix("Value error, ")
    return f"{loc or '(top level)'}: {msg}"


def resolve_argv(argv: tuple[str, ...], base_dir: str) -> list[str]:
    """`python` means the interpreter running meshgate; relative script paths resolve against base_dir."""
    if not argv:
        return []
    head = sys.executable if argv[0] in ("python", "python3") else argv[0]
    rest = [str(Path(base_dir, a)) if a.endswith(".py") and not Path(a).is_absolute() else a for a in argv[1:]]
    return [head, *rest]


def registry_url(config: Config) -> str:
    """The registry URL with a relative SQLite path made absolute (against the config file's directory, which
    is created if needed), so child processes (nodes, model fronts) open the same file wherever they run."""
    url = config.registry.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        path = Path(config.base_dir, url[len(prefix) :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return url
