"""Reading costs: burn rate, spend over windows and by dimension, series, cost per million tokens, budgets.

Every spend figure is summed from the per-minute cost series (CostMinute), so all levels agree: the
total is the sum of the providers, of the models, of the pools and of the instances. A window covers
the minutes that start in it; the minute still running is not computed yet.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from autoscaling.models import Pool
from finops import calc
from finops.models import Budget, CostMinute
from instances.models import Instance
from router.models import ApiKey, RequestTrace

# group_by value -> CostMinute field.
GROUPS = {"provider": "provider", "model": "model", "pool": "pool_id", "instance": "instance_id"}
# How rows without a pool (or a model) are labelled in groupings.
NO_GROUP = "(none)"
SPEND_WINDOWS = {"last_hour": timedelta(hours=1), "last_day": timedelta(days=1),
                 "last_7_days": timedelta(days=7), "last_30_days": timedelta(days=30)}
# Series: at most this many lines per chart (the rest are summed into one), and minute buckets only up
# to this window (1,440 points); longer windows are bucketed by hour.
MAX_SERIES = 10
MAX_MINUTE_BUCKET_WINDOW = timedelta(hours=24)
DEFAULT_MINUTE_BUCKET_WINDOW = timedelta(hours=6)
BUCKETS = {"minute": calc.MINUTE, "hour": calc.HOUR, "day": calc.DAY}
# The FinOps page's bars: per minute up to 6 hours, per hour up to a day, per day (UTC, dated) beyond.
PAGE_MINUTE_BARS_UP_TO = timedelta(hours=6)
PAGE_HOURLY_BARS_UP_TO = timedelta(hours=24)
# A budget shows as an alert on the dashboard from this share of its amount on (percent).
ALERT_FROM_PERCENT = 80
RATE_QUANTUM = Decimal("0.01")


def billable_instances() -> QuerySet[Instance]:
    """Instances paid for right now: their server exists and is not confirmed gone."""
    return Instance.objects.filter(provider_created_at__isnull=False, terminated_at__isnull=True,
                                   cost_per_hour__isnull=False)


def burn_rate(*, model: str | None = None) -> Decimal:
    """EUR per hour of every billable instance (of one model, if given)."""
    instances = billable_instances()
    if model is not None:
        instances = instances.filter(model__code=model)
    return instances.aggregate(rate=Sum("cost_per_hour"))["rate"] or Decimal(0)


def burn_rate_by_model() -> dict[str, Decimal]:
    rows = billable_instances().order_by().values("model__code").annotate(rate=Sum("cost_per_hour"))
    return {row["model__code"] or "": row["rate"] for row in rows}


def cost_minutes(*, start: datetime, end: datetime) -> QuerySet[CostMinute]:
    """The cost rows of the minutes that start in [start, end) (start rounded down to its minute)."""
    return CostMinute.objects.filter(minute__gte=calc.floor_minute(start), minute__lt=end)


def spend(*, start: datetime, end: datetime) -> Decimal:
    return calc.money(cost_minutes(start=start, end=end).aggregate(total=Sum("amount"))["total"])


def _label(value) -> str:
    return NO_GROUP if value in (None, "") else str(value)


def spend_by(group_by: str, *, start: datetime, end: datetime) -> list[dict]:
    """[{"key", "amount"}] per provider, model, pool or instance over the window, largest first."""
    field = GROUPS[group_by]
    rows = cost_minutes(start=start, end=end).order_by().values(field).annotate(total=Sum("amount"))
    groups = [{"key": _label(row[field]), "amount": calc.money(row["total"])} for row in rows]
    return sorted(groups, key=lambda group: (-group["amount"], group["key"]))


def spend_summary(*, now: datetime | None = None) -> dict:
    """Burn rate and its forecasts, spend over the usual windows, today and this month."""
    now = now or timezone.now()
    rate = burn_rate()
    return {
        "at": now,
        "burn_rate_per_hour": calc.money(rate),
        "forecasts": calc.forecasts(rate),
        "spend": {name: spend(start=now - window, end=now) for name, window in SPEND_WINDOWS.items()},
        "today": spend(start=calc.day_start(now), end=now),
        "this_month": spend(start=calc.month_start(now), end=now),
    }


def default_bucket(window: timedelta) -> str:
    return "minute" if window <= DEFAULT_MINUTE_BUCKET_WINDOW else "hour"


def page_bucket(window: timedelta) -> str:
    """The FinOps page's bar for a window: minutes for 6 h, hours for 24 h, days for 7 and 30 days."""
    if window <= PAGE_MINUTE_BARS_UP_TO:
        return "minute"
    return "hour" if window <= PAGE_HOURLY_BARS_UP_TO else "day"


def page_start(window: timedelta, *, now: datetime) -> datetime:
    """Where the page's window starts: at the start of its first bar, so that it shows whole bars (the last one
    still running), `window` of them in all, and its bars, breakdowns and total add up."""
    step = BUCKETS[page_bucket(window)]
    return calc.floor_to(now, step) - (window - step)


def pool_names(pool_ids) -> dict[str, str]:
    """{pool id (as CostMinute keeps it): the pool's name}; a pool deleted since keeps its id."""
    numeric = [int(pool_id) for pool_id in pool_ids if str(pool_id).isdigit()]
    names = {str(pk): name for pk, name in Pool.objects.filter(pk__in=numeric).values_list("pk", "name")}
    return {str(pool_id): names.get(str(pool_id), str(pool_id)) for pool_id in pool_ids}


def named_by_pool(rows: list[dict]) -> list[dict]:
    """`spend_by("pool", ...)` rows with each key replaced by the pool's name (what people read)."""
    names = pool_names([row["key"] for row in rows if row["key"] != NO_GROUP])
    return [{**row, "key": names.get(row["key"], row["key"])} for row in rows]


def spend_series(*, start: datetime, end: datetime, bucket: str, group_by: str | None) -> dict:
    """Spend per bucket (minute, hour or UTC day) over [start, end), one aligned array per group (or one total)."""
    step = BUCKETS[bucket]
    buckets = calc.bucket_starts(start=start, end=end, step=step)
    rows = cost_minutes(start=buckets[0] if buckets else start, end=end).order_by()
    at = "minute" if bucket == "minute" else "bucket_start"
    if bucket != "minute":
        truncate = TruncHour if bucket == "hour" else TruncDay
        rows = rows.annotate(bucket_start=truncate("minute", tzinfo=UTC))
    field = GROUPS.get(group_by or "")
    if field:
        values = rows.values(at, field).annotate(total=Sum("amount"))
        sparse = ((_label(row[field]), row[at], row["total"]) for row in values)
    else:
        values = rows.values(at).annotate(total=Sum("amount"))
        sparse = (("total", row[at], row["total"]) for row in values)
    lines = calc.dense_series(sparse, buckets=buckets, max_series=MAX_SERIES)
    if not field and not lines:
        # The total of no spend is a flat zero line, not an empty chart.
        lines = calc.dense_series([], buckets=buckets, max_series=MAX_SERIES, always=["total"])
    return {"start": start, "end": end, "bucket": bucket, "group_by": group_by, "buckets": buckets, "series": lines}


# --- Cost per million tokens ------------------------------------------------------------------


def _tokens():
    return Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0)


def tokens_by_model(*, start: datetime, end: datetime) -> dict[str, int]:
    rows = (RequestTrace.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
            .values("model").annotate(tokens=_tokens()))
    return {row["model"]: int(row["tokens"]) for row in rows if row["tokens"]}


def tokens_by_key_and_model(*, start: datetime, end: datetime, api_key_ids=None) -> dict[tuple[int, str], int]:
    traces = RequestTrace.objects.filter(created_at__gte=start, created_at__lt=end, api_key__isnull=False)
    if api_key_ids is not None:
        traces = traces.filter(api_key_id__in=api_key_ids)
    rows = traces.order_by().values("api_key_id", "model").annotate(tokens=_tokens())
    return {(row["api_key_id"], row["model"]): int(row["tokens"]) for row in rows if row["tokens"]}


def cost_by_model(*, start: datetime, end: datetime) -> dict[str, Decimal]:
    rows = cost_minutes(start=start, end=end).order_by().values("model").annotate(total=Sum("amount"))
    return {row["model"]: row["total"] for row in rows}


def _key_costs(model_costs: dict[str, Decimal], model_tokens: dict[str, int],
               key_tokens: dict[tuple[int, str], int]) -> dict[int, Decimal]:
    """Each key's share of its models' GPU cost, in proportion to the tokens it used of each."""
    costs: dict[int, Decimal] = defaultdict(Decimal)
    for (key_id, model), tokens in key_tokens.items():
        costs[key_id] += calc.share_of(model_costs.get(model, Decimal(0)), tokens, model_tokens.get(model, 0))
    return costs


def token_costs(*, start: datetime, end: datetime) -> dict:
    """Cost per million tokens over [start, end), per model and per API key, beside the list-price view.

    Per model: the GPU cost of its instances over the window (idle time included) over the tokens they
    served (prompt + completion). Per key: each model's cost split by the key's share of that model's
    tokens. List-price view per model: the model's hourly price now (its billable instances) over the
    tokens per hour observed in the window, i.e. what a million tokens costs if today's fleet keeps
    serving at the observed rate.
    """
    model_costs = cost_by_model(start=start, end=end)
    model_tokens = tokens_by_model(start=start, end=end)
    key_tokens = tokens_by_key_and_model(start=start, end=end)
    hourly_prices = burn_rate_by_model()
    hours = calc.seconds(end - start) / calc.SECONDS_PER_HOUR
    models = []
    for model in sorted(set(model_costs) | set(model_tokens) | {m for m, rate in hourly_prices.items() if rate}):
        cost, tokens = model_costs.get(model, Decimal(0)), model_tokens.get(model, 0)
        price = hourly_prices.get(model, Decimal(0))
        tokens_per_hour = Decimal(tokens) / hours if hours else Decimal(0)
        models.append({
            "model": model or NO_GROUP, "cost": calc.money(cost), "tokens": tokens,
            "cost_per_million": calc.cost_per_million(cost, tokens),
            "hourly_price": calc.money(price), "tokens_per_hour": tokens_per_hour.quantize(RATE_QUANTUM),
            "list_price_per_million": (calc.money(price / tokens_per_hour * calc.TOKENS_PER_MILLION)
                                       if tokens_per_hour else None),
        })
    key_costs = _key_costs(model_costs, model_tokens, key_tokens)
    key_totals: dict[int, int] = defaultdict(int)
    for (key_id, _model), tokens in key_tokens.items():
        key_totals[key_id] += tokens
    names = dict(ApiKey.objects.filter(pk__in=key_totals).values_list("id", "name"))
    keys = [
        {"api_key": key_id, "name": names.get(key_id, ""), "cost": calc.money(key_costs[key_id]),
         "tokens": tokens, "cost_per_million": calc.cost_per_million(key_costs[key_id], tokens)}
        for key_id, tokens in sorted(key_totals.items())
    ]
    return {"start": start, "end": end, "models": models, "api_keys": keys}


# --- Budgets ----------------------------------------------------------------------------------


def pool_spend(*, pool_ids: list[str], start: datetime, end: datetime) -> dict[str, Decimal]:
    if not pool_ids:
        return {}
    rows = (cost_minutes(start=start, end=end).filter(pool_id__in=pool_ids).order_by()
            .values("pool_id").annotate(total=Sum("amount")))
    return {row["pool_id"]: row["total"] for row in rows}


def key_spend(*, api_key_ids: list[int], start: datetime, end: datetime) -> dict[int, Decimal]:
    """What each key cost over the window: its share of the GPU cost of the models it used."""
    if not api_key_ids:
        return {}
    key_tokens = tokens_by_key_and_model(start=start, end=end, api_key_ids=api_key_ids)
    models = {model for _key, model in key_tokens}
    if not models:
        return {}
    model_costs = {m: c for m, c in cost_by_model(start=start, end=end).items() if m in models}
    model_tokens = {m: t for m, t in tokens_by_model(start=start, end=end).items() if m in models}
    return dict(_key_costs(model_costs, model_tokens, key_tokens))


def budgets() -> QuerySet[Budget]:
    return Budget.objects.select_related("api_key")


def _current(now: datetime) -> Q:
    return Q(spent_month=calc.month_of(now))


def keys_over_budget(*, now: datetime | None = None) -> set[int]:
    """Ids of the API keys whose spend this month reached their monthly budget.

    One indexed query on the small budget table (the spend is refreshed every minute by the cost task),
    so the router can call it whenever it refreshes its key cache. A budget raised above the spend takes
    effect at once; a new month starts every key under budget.
    """
    now = now or timezone.now()
    rows = Budget.objects.filter(_current(now), api_key__isnull=False, spent__gte=F("amount"))
    return set(rows.values_list("api_key_id", flat=True))


def budget_alerts(*, now: datetime | None = None) -> list[Budget]:
    """Budgets at or above ALERT_FROM_PERCENT of their amount this month, fullest first."""
    now = now or timezone.now()
    rows = [b for b in budgets().filter(_current(now)) if b.spent * 100 >= b.amount * ALERT_FROM_PERCENT]
    return sorted(rows, key=lambda b: -b.percent)
