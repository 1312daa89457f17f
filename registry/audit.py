"""The audit log: `append` never blocks the event loop; a daemon thread writes batches to the store.

Nothing is dropped silently: a failing store is retried with capped back-off while records wait in
memory, and only beyond `max_pending` are new records refused, each refusal counted and logged.
The writer is `batching.BatchWriter`, shared with the usage meter.
"""

from __future__ import annotations

import logging

from registry.batching import BatchWriter
from registry.models import AuditQuery, AuditRecord
from registry.store import RegistryStore

logger = logging.getLogger(__name__)


class AuditLog:
    """Batches `AuditRecord`s into `store.append_audit` from one writer thread."""

    def __init__(
        self,
        store: RegistryStore,
        *,
        batch_size: int = 256,
        max_pending: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        self._store = store
        self._max_pending = max_pending
        self._writer = BatchWriter[AuditRecord](
            store.append_audit,
            name="audit",
            batch_size=batch_size,
            max_pending=max_pending,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
        )

    @property
    def pending(self) -> int:
        """Records accepted but not yet written."""
        return self._writer.pending

    @property
    def dropped(self) -> int:
        """Records refused because `max_pending` were already waiting (each one was logged)."""
        return self._writer.dropped

    def append(self, record: AuditRecord) -> None:
        """Queue one record; returns at once (the lock is never held across I/O).

        Raises:
            RuntimeError: the log is closed.
        """
        dropped = self._writer.put(record)
        if dropped:
            logger.error(
                "audit store is %d records behind; dropped the record of decision %s (%d dropped so far)",
                self._max_pending,
                record.decision_id,
                dropped,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every record appended so far is written; False if `timeout` ran out first."""
        return self._writer.flush(timeout)

    def query(self, query: AuditQuery, timeout: float = 5.0) -> list[AuditRecord]:
        """Flush, then query the store, so a caller reads its own appends."""
        self._writer.flush(timeout)
        return self._store.query_audit(query)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the writer and log whatever could not be written. Idempotent."""
        self._writer.close(timeout)
