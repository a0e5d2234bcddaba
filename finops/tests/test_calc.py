"""Pure cost arithmetic: windows, proration at the edges, series folding, nearest-rank percentiles."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from finops import calc
from router.selectors import nearest_rank

T0 = datetime(2026, 5, 14, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "window"), [("90m", timedelta(minutes=90)), ("24h", timedelta(hours=24)),
                                             (" 7d ", timedelta(days=7)), ("366d", timedelta(days=366))])
def test_a_window_reads_like_a_prometheus_duration(raw, window):
    assert calc.parse_window(raw) == window


@pytest.mark.parametrize("raw", ["", "24", "h", "1.5h", "-1h", "0m", "367d", "1w", "9999999d"])
def test_a_window_outside_one_minute_to_366_days_is_refused(raw):
    with pytest.raises(ValueError):
        calc.parse_window(raw)


def test_a_machine_inside_one_minute_costs_only_its_seconds():
    rows = list(calc.minute_costs(billed_from=T0 + timedelta(seconds=10), billed_until=T0 + timedelta(seconds=40),
                                  cost_per_hour=Decimal("3.6"), window_start=T0, window_end=T0 + timedelta(hours=1)))

    assert rows == [(T0, Decimal("0.030000000000"))]  # 30 s at 1 mEUR/s


def test_a_running_machine_is_charged_to_the_end_of_the_window_only():
    rows = list(calc.minute_costs(billed_from=T0 - timedelta(hours=5), billed_until=None, cost_per_hour=Decimal("0.6"),
                                  window_start=T0, window_end=T0 + timedelta(minutes=3)))

    assert rows == [(T0 + timedelta(minutes=m), Decimal("0.010000000000")) for m in range(3)]


def test_microseconds_count_exactly():
    assert calc.seconds(timedelta(seconds=1, microseconds=250_000)) == Decimal("1.25")


def test_small_series_beyond_the_largest_are_summed_as_other():
    buckets = [T0, T0 + calc.MINUTE]
    rows = [("a", T0, Decimal(5)), ("b", T0, Decimal(3)), ("c", T0 + calc.MINUTE, Decimal(2)),
            ("d", T0, Decimal(1)), ("a", T0 + timedelta(days=1), Decimal(100))]  # outside the buckets

    lines = calc.dense_series(rows, buckets=buckets, max_series=2)

    assert [(line["key"], line["amounts"]) for line in lines] == [
        ("a", [Decimal(5), Decimal(0)]), ("b", [Decimal(3), Decimal(0)]), ("(other)", [Decimal(1), Decimal(2)]),
    ]


def test_hour_buckets_start_on_the_hour():
    starts = calc.bucket_starts(start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=2), step=calc.HOUR)

    assert starts == [T0, T0 + calc.HOUR]


@pytest.mark.parametrize(("count", "position"), [(1, 0), (19, 18), (20, 18), (100, 94), (101, 95)])
def test_the_p95_is_the_nearest_rank(count, position):
    assert nearest_rank(count, 0.95) == position
