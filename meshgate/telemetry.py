"""OpenTelemetry SDK wiring for the CLI: library code uses only the API, this installs a provider.

`none` installs nothing (spans are no-ops), `console` prints spans, `otlp` exports over HTTP
(the `otlp` extra, imported only here).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from meshgate.config import TelemetryConfig
from meshgate.errors import MissingDependency


def configure_tracing(config: TelemetryConfig) -> TracerProvider | None:
    """Install a global tracer provider per config; returns it so the caller can shut it down."""
    if config.exporter == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
    provider.add_span_processor(_processor(_exporter(config)))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(config: TelemetryConfig) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise MissingDependency("opentelemetry-exporter-otlp-proto-http", "otlp") from exc
    return OTLPSpanExporter(endpoint=config.otlp_endpoint)


def _processor(exporter: SpanExporter) -> SpanProcessor:
    return BatchSpanProcessor(exporter)
