"""An in-memory `EventStore` so example HTTP servers can resume SSE streams (Last-Event-ID).

The SDK ships only the abstract interface. This keeps every event of the process's lifetime up to
a bound, which suits examples and tests, not production.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import count

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage


class InMemoryEventStore(EventStore):
    """Events kept in arrival order, the oldest dropped beyond `max_events`."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._max_events = max_events
        self._events: OrderedDict[EventId, tuple[StreamId, JSONRPCMessage | None]] = OrderedDict()
        self._ids = count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Record one event (None is a priming event) and return its id."""
        event_id = str(next(self._ids))
        self._events[event_id] = (stream_id, message)
        while len(self._events) > self._max_events:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        """Send the stream's events after `last_event_id`; None when that id is unknown."""
        if last_event_id not in self._events:
            return None
        stream_id = self._events[last_event_id][0]
        seen = False
        for event_id, (event_stream, message) in list(self._events.items()):
            if seen and event_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            seen = seen or event_id == last_event_id
        return stream_id
