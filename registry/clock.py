"""Registry time strings: ISO-8601 UTC, fixed width, ending in `Z`, so lexical order is time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def format_time(moment: datetime) -> str:
    """`2025-01-31T12:00:00.000000Z`; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def canonical_time(value: str) -> str:
    """Rewrite any ISO-8601 time (or date) in the stored format so lexical comparison is exact.

    Without this, `...T10:00:00Z` would sort after `...T10:00:00.5Z` because `Z` > `.`.

    Raises:
        ValueError: `value` is not an ISO-8601 date or time.
    """
    return format_time(datetime.fromisoformat(value))


def parse_since(value: str, now: datetime | None = None) -> str:
    """An absolute ISO-8601 time, or a relative `30s`/`15m`/`2h`/`7d` before `now`, as a stored time.

    Raises:
        ValueError: neither form.
    """
    match = _RELATIVE.match(value.strip())
    if match is None:
        return canonical_time(value)
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    return format_time((now or datetime.now(UTC)) - timedelta(**{unit: amount}))
