from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider

from meshgate.config import TelemetryConfig
from meshgate.telemetry import configure_metrics, metrics_endpoint


def test_no_exporter_installs_no_meter_provider() -> None:
    assert configure_metrics(TelemetryConfig(exporter="none")) is None


def test_the_console_exporter_installs_the_global_meter_provider() -> None:
    provider = configure_metrics(TelemetryConfig(exporter="console"), export_interval_s=3600)
    assert isinstance(provider, MeterProvider)
    try:
        assert metrics.get_meter_provider() is provider
    finally:
        provider.shutdown()


def test_otlp_metrics_go_beside_the_traces_endpoint() -> None:
    assert metrics_endpoint("http://127.0.0.1:4318/v1/traces") == "http://127.0.0.1:4318/v1/metrics"
    assert metrics_endpoint("http://collector:4318/custom") == "http://collector:4318/custom"
