"""OpenTelemetry SDK wiring for the CLI: library code uses only the API, this installs the providers.

`none` installs nothing (spans and metrics are no-ops), `console` prints them, `otlp` exports over
HTTP (the `otlp` extra, imported only here). Traces and metrics share the one exporter setting.
"""

from __future__ import annotations

import sys

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader
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


def configure_metrics(config: TelemetryConfig, *, export_interval_s: float = 60.0) -> MeterProvider | None:
    """Install a global meter provider per config (the usage meter's token counters); returns it for shutdown.

    OTLP metrics go to the traces endpoint's sibling path (`/v1/traces` -> `/v1/metrics`), the
    collector's convention, so one `otlp_endpoint` setting serves both signals.
    """
    if config.exporter == "none":
        return None
    reader = PeriodicExportingMetricReader(_metric_exporter(config), export_interval_millis=export_interval_s * 1000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": config.service_name}))
    metrics.set_meter_provider(provider)
    return provider


def metrics_endpoint(traces_endpoint: str) -> str:
    """The OTLP/HTTP metrics URL beside a traces URL; any other URL is used as it is."""
    if traces_endpoint.endswith("/v1/traces"):
        return traces_endpoint.removesuffix("/v1/traces") + "/v1/metrics"
    return traces_endpoint


def _metric_exporter(config: TelemetryConfig) -> MetricExporter:
    if config.exporter == "console":
        return ConsoleMetricExporter(out=sys.stderr)
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise MissingDependency("opentelemetry-exporter-otlp-proto-http", "otlp") from exc
    return OTLPMetricExporter(endpoint=metrics_endpoint(config.otlp_endpoint))


def _exporter(config: TelemetryConfig) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the protocol of a stdio MCP server
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise MissingDependency("opentelemetry-exporter-otlp-proto-http", "otlp") from exc
    return OTLPSpanExporter(endpoint=config.otlp_endpoint)


def _processor(exporter: SpanExporter) -> SpanProcessor:
    return BatchSpanProcessor(exporter)
