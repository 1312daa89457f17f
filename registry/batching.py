"""A background writer: `put` never blocks the event loop; a daemon thread writes batches through a callable.

The machinery of `audit.AuditLog`, generic over the record type so the usage meter shares it. Nothing
is dropped silently: a failing write is retried with capped back-off while records wait in memory,
and only beyond `max_pending` are new records refused, each refusal counted and logged by the caller.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Batches records into `write(batch)` from one writer thread named `name`."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        *,
        name: str,
        batch_size: int = 256,
        max_pending: int = 100_000,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
    ) -> None:
        self._write = write
        self._name = name
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()  # None: stop
        # Counters under one condition: flush() waits for `_written` to reach `_accepted`.
        self._done = threading.Condition()
        self._accepted = 0
        self._written = 0
        self._dropped = 0
        self._closed = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"meshgate-{name}-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records accepted but not yet written."""
        with self._done:
            return self._accepted - self._written

    @property
    def dropped(self) -> int:
        """Records refused because `max_pending` were already waiting."""
        with self._done:
            return self._dropped

    def put(self, record: T) -> int:
        """Queue one record; returns 0, or the running count of refusals when this one was refused.

        Raises:
            RuntimeError: the writer is closed.
        """
        with self._done:
            if self._closed:
                raise RuntimeError(f"the {self._name} writer is closed")
            if self._accepted - self._written < self._max_pending:
                self._accepted += 1
                self._queue.put(record)
                return 0
            self._dropped += 1
            return self._dropped

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every record put so far is written; False if `timeout` ran out first."""
        with self._done:
            target = self._accepted
            return self._done.wait_for(lambda: self._written >= target, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the writer and log whatever could not be written. Idempotent."""
        with self._done:
            if self._closed:
                return
            self._closed = True
        self.flush(timeout)
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)
        unwritten = self.pending
        if unwritten:
            logger.error("%s writer closed with %d records not written to the store", self._name, unwritten)

    def _run(self) -> None:
        batch: list[T] = []
        delay = self._retry_initial_s
        while True:
            if not batch:
                first = self._queue.get()
                if first is None:
                    return
                batch.append(first)
            self._fill(batch)
            try:
                self._write(batch)
            except Exception:
                logger.exception("%s store failed; keeping %d records to retry in %.2fs", self._name, len(batch), delay)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self._retry_max_s)
                continue
            delay = self._retry_initial_s
            with self._done:
                self._written += len(batch)
                self._done.notify_all()
            batch = []

    def _fill(self, batch: list[T]) -> None:
        while len(batch) < self._batch_size:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return
            if record is None:
                self._queue.put(None)  # seen by the next empty-batch get(), after this batch is written
                return
            batch.append(record)
