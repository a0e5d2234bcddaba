"""Pure cost arithmetic: minutes, proration, forecasts, cost per million tokens, chart series. No database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECONDS_PER_HOUR = Decimal(3600)
MICROSECONDS_PER_SECOND = Decimal(1_000_000)
# Stored per-minute amounts (finops.models.AMOUNT_PLACES) and the precision totals are shown with.
AMOUNT_QUANTUM = Decimal("0.000000000001")
MONEY_QUANTUM = Decimal("0.000001")
TOKENS_PER_MILLION = Decimal(1_000_000)
# Budget use is stated to a tenth of a percent.
PERCENT_QUANTUM = Decimal("0.1")

# Forecast horizons at the current burn rate, in hours.
FORECAST_HOURS = {"next_hour": 1, "next_day": 24, "next_30_days": 30 * 24, "next_365_days": 365 * 24}

# Windows are written like Prometheus durations: `90m`, `24h`, `7d`.
WINDOW_PATTERN = re.compile(r"^(\d{1,6})([mhd])$")
WINDOW_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=366)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(moment: datetime) -> datetime:
    return day_start(moment).replace(day=1)


def month_of(moment: datetime) -> date:
    return month_start(moment).date()


def seconds(delta: timedelta) -> Decimal:
    """A duration in seconds, exactly (microseconds included)."""
    whole = delta.days * 86400 + delta.seconds
    return Decimal(whole) + Decimal(delta.microseconds) / MICROSECONDS_PER_SECOND


def cost_of(cost_per_hour: Decimal, duration: timedelta) -> Decimal:
    return (cost_per_hour * seconds(duration) / SECONDS_PER_HOUR).quantize(AMOUNT_QUANTUM, ROUND_HALF_EVEN)


def money(amount: Decimal | float | int | None) -> Decimal:
    """A total as it is shown and returned: rounded to MONEY_QUANTUM (None, from an empty sum, is zero)."""
    return Decimal(str(amount or 0)).quantize(MONEY_QUANTUM, ROUND_HALF_EVEN)


def minute_costs(*, billed_from: datetime, billed_until: datetime | None, cost_per_hour: Decimal,
                 window_start: datetime, window_end: datetime) -> Iterator[tuple[datetime, Decimal]]:
    """(minute, amount) for each minute of [window_start, window_end) the machine was paid for.

    The machine is paid for from `billed_from` to `billed_until` (None: still running); a minute it
    covers only in part costs its share of seconds. Window bounds must be minute-aligned.
    """
    start = max(billed_from, window_start)
    end = window_end if billed_until is None else min(billed_until, window_end)
    minute = floor_minute(start)
    while minute < end:
        following = minute + MINUTE
        overlap = min(following, end) - max(minute, start)
        if overlap > timedelta(0):
            amount = cost_of(cost_per_hour, overlap)
            if amount:
                yield minute, amount
        minute = following


def forecasts(burn_rate_per_hour: Decimal) -> dict[str, Decimal]:
    """What the current burn rate costs over each horizon if nothing changes."""
    return {name: money(burn_rate_per_hour * hours) for name, hours in FORECAST_HOURS.items()}


def cost_per_million(cost: Decimal, tokens: int) -> Decimal | None:
    """Cost of a million tokens at `cost` for `tokens`; None when nothing was served."""
    if not tokens:
        return None
    return money(Decimal(cost) / Decimal(tokens) * TOKENS_PER_MILLION)


def percent_of(spent: Decimal, amount: Decimal) -> Decimal:
    """`spent` as a percentage of `amount`, to PERCENT_QUANTUM (0 when there is no amount)."""
    return (Decimal(spent) * 100 / Decimal(amount)).quantize(PERCENT_QUANTUM) if amount else Decimal(0)


def share_of(cost: Decimal, part: int, whole: int) -> Decimal:
    """The part of `cost` that `part` tokens of `whole` account for (not rounded: shares are summed)."""
    if not whole:
        return Decimal(0)
    return Decimal(cost) * Decimal(part) / Decimal(whole)


def parse_window(raw: str) -> timedelta:
    """`24h` -> 24 hours. Raises ValueError with a message for a person."""
    match = WINDOW_PATTERN.match(raw.strip())
    if not match:
        raise ValueError(f"{raw!r} is not a window such as 60m, 24h or 7d")
    window = int(match.group(1)) * WINDOW_UNITS[match.group(2)]
    if not MINUTE <= window <= MAX_WINDOW:
        raise ValueError(f"must be between 1m and {MAX_WINDOW.days}d")
    return window


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """The start (UTC) of the minute, hour or day bucket that holds `moment`."""
    if step == DAY:
        return day_start(moment)
    return floor_hour(moment) if step == HOUR else floor_minute(moment)


def bucket_starts(*, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Aligned bucket starts covering [start, end): minute, hour or day (UTC) buckets."""
    current = floor_to(start, step)
    starts = []
    while current < end:
        starts.append(current)
        current += step
    return starts


def dense_series(rows: Iterable[tuple[str, datetime, Decimal]], *, buckets: list[datetime],
                 max_series: int, other: str = "(other)", always: Iterable[str] = ()) -> list[dict]:
    """Turn sparse (key, bucket, amount) rows into one array per key aligned on `buckets`, largest first.

    Keys beyond the `max_series` largest are summed into one `other` series, so a chart stays legible
    with hundreds of instances. Keys in `always` get a line even without rows.
    """
    index = {bucket: position for position, bucket in enumerate(buckets)}
    by_key: dict[str, list[Decimal]] = {key: [Decimal(0)] * len(buckets) for key in always}
    for key, bucket, amount in rows:
        position = index.get(bucket)
        if position is None:
            continue
        values = by_key.setdefault(key, [Decimal(0)] * len(buckets))
        values[position] += Decimal(str(amount))
    ranked = sorted(by_key.items(), key=lambda item: (-sum(item[1]), item[0]))
    kept, rest = ranked[:max_series], ranked[max_series:]
    if rest:
        merged = [sum(column, Decimal(0)) for column in zip(*(values for _, values in rest), strict=True)]
        kept.append((other, merged))
    return [{"key": key, "amounts": [money(value) for value in values], "total": money(sum(values))}
            for key, values in kept]
