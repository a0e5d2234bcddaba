"""Prometheus exposition of the control plane and router, read from the database at scrape time.

Every scrape runs a handful of aggregate queries: nothing is kept in process memory, so any web replica
answers the same figures. Counters are totals of the request traces; latency and TTFT are gauge
histograms of the last few minutes of traffic (a distribution of recent requests, not a running count).
Pools: members per phase, desired size and the requests the router holds while a pool scales from zero.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from autoscaling.selectors import sizes_for_metrics
from finops import calc, selectors, traffic
from instances.selectors import status_counts
from router.models import RequestTrace

PREFIX = "inventiv"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BEARER = "Bearer "


class InventivCollector:
    """Reads everything at collect() time; `now` is fixed per scrape so all figures agree."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield self._instances()
        yield self._heartbeat_ages(now)
        yield from self._router_counters()
        yield self._histogram("router_recent_latency_seconds", "latency_ms", traffic.LATENCY_BUCKETS_S, now=now,
                              what="Latency of the requests of the last 5 minutes, per model")
        yield self._histogram("router_recent_ttft_seconds", "ttft_ms", traffic.TTFT_BUCKETS_S, now=now,
                              what="Time to first token of the streams of the last 5 minutes, per model")
        yield from self._costs(now)
        yield from self._pools()

    def _instances(self) -> Metric:
        family = GaugeMetricFamily(f"{PREFIX}_instances", "Instances per status", labels=["status"])
        for status, count in status_counts()["by_status"].items():
            family.add_metric([status], count)
        return family

    def _pools(self) -> Iterator[Metric]:
        members = GaugeMetricFamily(f"{PREFIX}_pool_instances", "Members of each pool per phase",
                                    labels=["pool", "phase"])
        desired = GaugeMetricFamily(f"{PREFIX}_pool_desired_size", "The autoscaler's last desired size", labels=["pool"])
        held = GaugeMetricFamily(f"{PREFIX}_pool_held_requests",
                                 "Requests the router holds while the pool scales from zero", labels=["pool"])
        for row in sizes_for_metrics():
            for phase, count in row["members"].items():
                members.add_metric([row["pool"], phase], count)
            desired.add_metric([row["pool"]], row["desired"])
            held.add_metric([row["pool"]], row["held"])
        yield from (members, desired, held)

    def _heartbeat_ages(self, now: datetime) -> Metric:
        family = GaugeMetricFamily(f"{PREFIX}_worker_heartbeat_age_seconds",
                                   "Seconds since the last heartbeat of each ready instance",
                                   labels=["instance_id", "model"])
        for row in traffic.heartbeat_ages(now=now):
            family.add_metric([row["instance_id"], row["model"]], row["age_s"])
        return family

    def _router_counters(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(f"{PREFIX}_router_requests", "Requests answered by the router",
                                       labels=["model", "outcome"])
        errors = CounterMetricFamily(f"{PREFIX}_router_errors", "Requests that did not end well (any outcome but ok)",
                                     labels=["model"])
        tokens = CounterMetricFamily(f"{PREFIX}_router_tokens", "Tokens served", labels=["model", "kind"])
        error_counts: dict[str, int] = defaultdict(int)
        token_counts: dict[tuple[str, str], int] = defaultdict(int)
        for row in traffic.router_totals():
            requests.add_metric([row["model"], row["outcome"]], row["requests"])
            if row["outcome"] != RequestTrace.Outcome.OK:
                error_counts[row["model"]] += row["requests"]
            token_counts[(row["model"], "prompt")] += row["prompt"]
            token_counts[(row["model"], "completion")] += row["completion"]
        for model, count in sorted(error_counts.items()):
            errors.add_metric([model], count)
        for labels, count in sorted(token_counts.items()):
            tokens.add_metric(list(labels), count)
        yield from (requests, errors, tokens)

    def _histogram(self, name: str, field: str, buckets_s: tuple[float, ...], *, now: datetime, what: str) -> Metric:
        family = GaugeHistogramMetricFamily(f"{PREFIX}_{name}", what, labels=["model"])
        for model, data in traffic.histogram(field, buckets_s, now=now).items():
            buckets = [(floatToGoString(bound), count) for bound, count in data["buckets"]] + [("+Inf", data["count"])]
            family.add_metric([model], buckets, gsum_value=data["sum_s"])
        return family

    def _costs(self, now: datetime) -> Iterator[Metric]:
        yield GaugeMetricFamily(f"{PREFIX}_burn_rate_eur_per_hour", "EUR per hour of every billable instance",
                                value=float(selectors.burn_rate()))
        yield GaugeMetricFamily(f"{PREFIX}_spend_today_eur", "Spend since midnight UTC",
                                value=float(selectors.spend(start=calc.day_start(now), end=now)))
        yield GaugeMetricFamily(f"{PREFIX}_spend_month_eur", "Spend since the first of the month (UTC)",
                                value=float(selectors.spend(start=calc.month_start(now), end=now)))
        budgets = GaugeMetricFamily(f"{PREFIX}_budget_used_ratio", "This month's spend over the monthly budget",
                                    labels=["scope", "target"])
        month = calc.month_of(now)
        for budget in selectors.budgets():
            spent = budget.spent if budget.spent_month == month else 0
            target = budget.pool_id if budget.pool_id is not None else str(budget.api_key_id)
            budgets.add_metric([budget.scope, target], float(spent / budget.amount))
        yield budgets


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InventivCollector())
    return generate_latest(registry)


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: a forwarded-for header is whatever the client says. Behind a proxy, use the token.
    return request.META.get("REMOTE_ADDR", "")


def may_scrape(request: HttpRequest) -> bool:
    """The bearer token of INVENTIV_METRICS_TOKEN, or a client address in INVENTIV_METRICS_ALLOWED_IPS."""
    token = settings.INVENTIV_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith(BEARER) and hmac.compare_digest(header[len(BEARER):].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in network for network in settings.INVENTIV_METRICS_ALLOWED_IPS)
