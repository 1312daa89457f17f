from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from registry.clock import canonical_time, format_time, parse_since, utc_now

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_times_are_fixed_width_utc_with_z() -> None:
    assert format_time(NOW) == "2025-03-01T12:00:00.000000Z"
    assert len(utc_now()) == len("2025-03-01T12:00:00.000000Z")
    assert utc_now().endswith("Z")


def test_other_offsets_are_converted_to_utc() -> None:
    assert (
        format_time(datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-03-01T12:00:00.000000Z"
    )


def test_canonical_time_makes_a_whole_second_sort_before_its_fractions() -> None:
    assert canonical_time("2025-03-01T12:00:00Z") <= "2025-03-01T12:00:00.500000Z"


def test_a_date_alone_means_its_midnight() -> None:
    assert canonical_time("2025-03-01") == "2025-03-01T00:00:00.000000Z"


@pytest.mark.parametrize(("span", "expected"), [("30s", "11:59:30"), ("15m", "11:45:00"), ("2h", "10:00:00")])
def test_relative_spans_count_back_from_now(span: str, expected: str) -> None:
    assert parse_since(span, NOW) == f"2025-03-01T{expected}.000000Z"


def test_days_count_back_across_months() -> None:
    assert parse_since("1d", NOW) == "2025-02-28T12:00:00.000000Z"


def test_garbage_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_since("yesterday", NOW)
