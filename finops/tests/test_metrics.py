"""/metrics: Prometheus text that parses, read from the database, for a token or an allowed address only."""

import ipaddress
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from autoscaling.models import Pool
from autoscaling.tests.factories import make_pool
from finops.services import accrue_costs
from finops.tests.factories import LARGE, START, api_key, billed_instance, budget, trace
from instances.status import Status
from instances.tests.factories import make_instance
from monitoring.models import WorkerState
from router.models import RequestTrace

pytestmark = pytest.mark.django_db
URL = "/metrics"
GRAFANA = Path(__file__).resolve().parents[2] / "grafana" / "inventiv.json"
OUTSIDE = "203.0.113.9"
TOKEN = "scrape-me-0123456789"


def families(response) -> dict:
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, name: str | None = None) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if name is None or s.name == name}


@pytest.fixture
def traffic(seed, clock):
    serving = billed_instance(since=START - timedelta(hours=1))
    billed_instance(since=START - timedelta(hours=1), type_code=LARGE, status=Status.BOOTING)
    WorkerState.objects.create(instance_id=serving.pk, last_heartbeat_at=START - timedelta(seconds=4))
    key = api_key()
    trace(key=key, at=START - timedelta(seconds=30), prompt=10, completion=5, latency_ms=80, ttft_ms=20)
    trace(key=key, at=START - timedelta(seconds=20), prompt=10, completion=7, latency_ms=700, ttft_ms=300)
    trace(key=key, at=START - timedelta(seconds=10), latency_ms=3000, outcome=RequestTrace.Outcome.UPSTREAM_ERROR)
    trace(key=key, at=START - timedelta(hours=2), prompt=100, latency_ms=50)  # counted, but not recent
    budget(amount="1.00", key=key)
    accrue_costs()
    return {"serving": serving, "key": key}


def test_the_exposition_parses_and_holds_the_control_plane_and_router_metrics(client, traffic):
    response = client.get(URL)  # from 127.0.0.1, allowed by default

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = families(response)
    assert samples(metrics["inventiv_instances"])[(("status", "ready"),)] == 1
    assert samples(metrics["inventiv_instances"])[(("status", "booting"),)] == 1
    assert samples(metrics["inventiv_worker_heartbeat_age_seconds"]) == {
        (("instance_id", str(traffic["serving"].pk)), ("model", "mock-echo")): 4.0
    }
    assert samples(metrics["inventiv_router_requests"]) == {
        (("model", "mock-echo"), ("outcome", "ok")): 3, (("model", "mock-echo"), ("outcome", "upstream_error")): 1,
    }
    assert samples(metrics["inventiv_router_errors"]) == {(("model", "mock-echo"),): 1}
    assert samples(metrics["inventiv_router_tokens"]) == {
        (("kind", "completion"), ("model", "mock-echo")): 12, (("kind", "prompt"), ("model", "mock-echo")): 120,
    }
    assert metrics["inventiv_burn_rate_eur_per_hour"].samples[0].value == 1.0


def test_latency_and_ttft_are_histograms_of_the_last_minutes(client, traffic):
    metrics = families(client.get(URL))

    latency = samples(metrics["inventiv_router_recent_latency_seconds"],
                      "inventiv_router_recent_latency_seconds_bucket")
    assert latency[(("le", "0.1"), ("model", "mock-echo"))] == 1  # 80 ms; the 2-hour-old 50 ms is not recent
    assert latency[(("le", "1.0"), ("model", "mock-echo"))] == 2
    assert latency[(("le", "+Inf"), ("model", "mock-echo"))] == 3
    ttft = samples(metrics["inventiv_router_recent_ttft_seconds"], "inventiv_router_recent_ttft_seconds_bucket")
    assert (ttft[(("le", "0.025"), ("model", "mock-echo"))], ttft[(("le", "+Inf"), ("model", "mock-echo"))]) == (1, 2)
    assert metrics["inventiv_router_recent_latency_seconds_gsum"].samples[0].value == pytest.approx(3.78)


def test_budgets_and_costs_are_exposed(client, traffic):
    metrics = families(client.get(URL))

    target = str(traffic["key"].pk)
    assert samples(metrics["inventiv_budget_used_ratio"]) == {(("scope", "api_key"), ("target", target)): 0.0}
    assert "inventiv_spend_today_eur" in metrics and "inventiv_spend_month_eur" in metrics


def test_pool_sizes_and_held_requests_are_exposed(client, seed):
    pool = make_pool(name="chat")
    make_instance(status=Status.READY, with_server=False, pool=pool)
    make_instance(status=Status.BOOTING, with_server=False, pool=pool)
    Pool.objects.filter(pk=pool.pk).update(desired_size=3, held_requests=4, held_at=timezone.now())

    metrics = families(client.get(URL))

    assert samples(metrics["inventiv_pool_instances"]) == {
        (("phase", "draining"), ("pool", "chat")): 0, (("phase", "ready"), ("pool", "chat")): 1,
        (("phase", "starting"), ("pool", "chat")): 1,
    }
    assert samples(metrics["inventiv_pool_desired_size"]) == {(("pool", "chat"),): 3}
    assert samples(metrics["inventiv_pool_held_requests"]) == {(("pool", "chat"),): 4}


def test_it_refuses_a_client_outside_the_allowed_addresses_without_the_token(client, db, settings):
    settings.INVENTIV_METRICS_TOKEN = TOKEN

    assert client.get(URL, REMOTE_ADDR=OUTSIDE).status_code == 403
    assert client.get(URL, REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get(URL, REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 403
    assert client.get(URL, REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_without_a_configured_token_only_allowed_addresses_may_scrape(client, db, settings):
    settings.INVENTIV_METRICS_TOKEN = ""
    settings.INVENTIV_METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.0.0.0/8")]

    assert client.get(URL, REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 403  # 127.0.0.1 is no longer allowed


def test_every_metric_the_grafana_dashboard_queries_is_exposed(client, traffic):
    make_pool(name="chat")  # pool families have samples only when a pool exists
    exposed = {sample.name for family in families(client.get(URL)).values() for sample in family.samples}
    queries = [target["expr"] for panel in json.loads(GRAFANA.read_text())["panels"] for target in panel["targets"]]

    used = {name for expr in queries for name in re.findall(r"\binventiv_[a-z_]+", expr)}

    assert used and used <= exposed, used - exposed
