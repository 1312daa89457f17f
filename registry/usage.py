"""Metering: the tokens each generation spent, appended to the registry and counted as OpenTelemetry metrics.

`record` returns at once: the registry write happens on a background writer (`batching.BatchWriter`,
as for the audit log) and the counters go through the OpenTelemetry API only; the CLI installs the SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from opentelemetry import metrics

from registry.batching import BatchWriter
from registry.clock import utc_now
from registry.models import UsageQuery, UsageRecord
from registry.store import RegistryStore

logger = logging.getLogger(__name__)

PROMPT_TOKENS = "meshgate.inference.prompt_tokens"
COMPLETION_TOKENS = "meshgate.inference.completion_tokens"


USAGE_META_KEY = "io.meshgate/usage"
"""Where a model front reports a generation's tokens: the tool result's `_meta`, the agent's final message metadata."""


def reported_usage(
    usage: Mapping[str, Any],
    *,
    subject: str,
    tenant: str,
    via: Literal["mcp", "a2a"],
    decision_id: str,
    trace_id: str,
    model: str = "",
) -> UsageRecord:
    """The record of what a model front reported (`{model, node, prompt_tokens, completion_tokens}`), for the
    caller who asked; counts that are not non-negative numbers (protobuf gives floats) count as 0."""
    return UsageRecord(
        time=utc_now(),
        subject=subject,
        tenant=tenant,
        model=str(usage.get("model", model)),
        node=str(usage.get("node", "")),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        via=via,
        decision_id=decision_id,
        trace_id=trace_id,
    )


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else 0


class UsageMeter:
    """Records `UsageRecord`s in the store's append-only usage log and in two token counters."""

    def __init__(
        self,
        store: RegistryStore,
        *,
        meter: metrics.Meter | None = None,
        batch_size: int = 256,
        max_pending: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        """`meter` defaults to the global provider's (a no-op until the CLI installs one)."""
        self._store = store
        self._writer = BatchWriter[UsageRecord](
            store.append_usage,
            name="usage",
            batch_size=batch_size,
            max_pending=max_pending,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
        )
        meter = meter or metrics.get_meter("meshgate.inference")
        self._prompt = meter.create_counter(PROMPT_TOKENS, unit="{token}", description="Prompt tokens of generations")
        self._completion = meter.create_counter(
            COMPLETION_TOKENS, unit="{token}", description="Completion tokens of generations"
        )

    @property
    def pending(self) -> int:
        return self._writer.pending

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    def record(self, record: UsageRecord) -> None:
        """Count the tokens now and queue the record for the store; never blocks on I/O.

        Raises:
            RuntimeError: the meter is closed.
        """
        dropped = self._writer.put(record)
        # Metrics are counted even when the store is too far behind: they are the live view of spend.
        attributes = {"tenant": record.tenant, "model": record.model, "node": record.node, "via": record.via}
        self._prompt.add(record.prompt_tokens, attributes)
        self._completion.add(record.completion_tokens, attributes)
        if dropped:
            logger.error(
                "usage store is behind; dropped the usage of %s/%s on %s (%d prompt + %d completion tokens, "
                "%d records dropped so far)",
                record.tenant,
                record.subject,
                record.model,
                record.prompt_tokens,
                record.completion_tokens,
                dropped,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every record so far is written; False if `timeout` ran out first."""
        return self._writer.flush(timeout)

    def query(self, query: UsageQuery, timeout: float = 5.0) -> list[UsageRecord]:
        """Flush, then query the store, so a caller reads its own records."""
        self._writer.flush(timeout)
        return self._store.query_usage(query)

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop the writer. Idempotent."""
        self._writer.close(timeout)
