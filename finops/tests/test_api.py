"""The FinOps API: summary, spend between dates, series, cost per million tokens, budgets."""

from decimal import Decimal

import pytest

from finops.models import Budget
from finops.services import accrue_costs
from finops.tests.factories import LARGE, START, api_key, billed_instance, budget, minutes, trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_hours(seed, clock):
    """A small machine in pool 3 and a large one without a pool, both 08:00-10:00 on 2026-05-14."""
    ten = START.replace(second=0)
    small = billed_instance(since=ten - minutes(120), until=ten, pool_id=3)
    large = billed_instance(since=ten - minutes(120), type_code=LARGE)
    accrue_costs()
    return {"small": small, "large": large}


def test_the_summary_gives_burn_rate_forecasts_and_spend_to_any_signed_in_user(viewer_api, two_hours):
    body = viewer_api.get("/api/finops/summary/").json()

    assert body["burn_rate_per_hour"] == "0.750000"
    assert body["forecasts"]["next_day"] == "18.000000"
    assert body["spend"]["last_hour"] == "1.000000"
    assert (body["today"], body["this_month"]) == ("2.000000", "2.000000")


def test_the_finops_api_needs_a_signed_in_user(client, db):
    assert client.get("/api/finops/summary/").status_code in (401, 403)


def test_spend_between_two_dates_is_grouped_as_asked(viewer_api, two_hours):
    response = viewer_api.get("/api/finops/spend/", {"start": "2026-05-14", "end": "2026-05-14", "group_by": "pool"})

    body = response.json()
    assert response.status_code == 200
    assert (body["start"], body["end"]) == ("2026-05-14T00:00:00Z", "2026-05-15T00:00:00Z")
    assert body["total"] == "2.000000"
    assert body["groups"] == [{"key": "(none)", "amount": "1.500000"}, {"key": "3", "amount": "0.500000"}]


def test_spend_takes_date_times_with_or_without_an_offset(viewer_api, two_hours):
    params = {"start": "2026-05-14T11:00:00+02:00", "end": "2026-05-14T09:30"}
    body = viewer_api.get("/api/finops/spend/", params).json()

    assert body["total"] == "0.500000"  # 09:00-09:30 UTC, both machines
    assert body["groups"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "yesterday"}, "start"),
    ({"start": "2026-02-30"}, "start"),
    ({"end": "2026-13-01T00:00:00Z"}, "end"),
    ({"end": "9999-12-31"}, "end"),
    ({"start": "2026-05-14", "end": "2026-05-13"}, "end"),
    ({"group_by": "zone"}, "group_by"),
])
def test_a_bad_spend_query_is_a_400_naming_the_field(viewer_api, db, params, field):
    response = viewer_api.get("/api/finops/spend/", params)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_the_series_has_one_aligned_line_per_group(viewer_api, two_hours):
    body = viewer_api.get("/api/finops/series/", {"window": "3h", "group_by": "provider"}).json()

    assert body["bucket"] == "minute" and len(body["buckets"]) == 181  # 07:00 (rounded down) to 10:00
    assert body["buckets"][60] == "2026-05-14T08:00:00Z"
    (line,) = body["series"]
    assert (line["key"], line["total"]) == ("mock", "2.000000")
    assert line["amounts"][59:61] == ["0.000000", "0.016667"]  # 1 EUR/h from 08:00


def test_hour_buckets_sum_their_minutes(viewer_api, two_hours):
    body = viewer_api.get("/api/finops/series/", {"window": "24h", "bucket": "hour", "group_by": "model"}).json()

    (line,) = body["series"]
    assert line["amounts"][-3:] == ["1.000000", "1.000000", "0.000000"]  # 08:00, 09:00, 10:00 (not finished)


@pytest.mark.parametrize(("params", "field"), [
    ({"window": "forever"}, "window"), ({"window": "0h"}, "window"), ({"window": "400d"}, "window"),
    ({"window": "7d", "bucket": "minute"}, "bucket"), ({"group_by": "zone"}, "group_by"),
])
def test_a_bad_series_query_is_a_400_naming_the_field(viewer_api, db, params, field):
    response = viewer_api.get("/api/finops/series/", params)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_token_costs_cover_the_window(viewer_api, two_hours):
    trace(key=api_key("alice"), at=START - minutes(30), prompt=1_000_000)

    body = viewer_api.get("/api/finops/token-costs/", {"window": "1h"}).json()

    assert body["models"] == [{
        "model": "mock-echo", "cost": "1.000000", "tokens": 1_000_000, "cost_per_million": "1.000000",
        "hourly_price": "0.750000", "tokens_per_hour": "1000000.00", "list_price_per_million": "0.750000",
    }]
    assert body["api_keys"][0]["cost_per_million"] == "1.000000"


def test_staff_create_change_and_delete_budgets(api, db):
    key = api_key()
    created = api.post("/api/finops/budgets/", {"pool": "gpu-pool-1", "amount": "100.00"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json() | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0, "scope": "pool", "pool": "gpu-pool-1", "api_key": None, "amount": "100.00",
        "spent_this_month": "0.000000", "percent": 0.0, "spent_at": None, "created_at": "", "updated_at": "",
    }
    assert api.post("/api/finops/budgets/", {"api_key": key.pk, "amount": "5"}, format="json").status_code == 201

    url = f"/api/finops/budgets/{created.json()['id']}/"
    assert api.patch(url, {"amount": "250.50"}, format="json").json()["amount"] == "250.50"
    assert api.delete(url).status_code == 204
    assert list(Budget.objects.values_list("api_key_id", flat=True)) == [key.pk]


@pytest.mark.parametrize(("body", "field"), [
    ({"amount": "10"}, "pool"),
    ({"amount": "10", "pool": "p", "api_key": "KEY"}, "pool"),
    ({"amount": "10", "pool": "taken"}, "pool"),
    ({"amount": "0", "pool": "p"}, "amount"),
    ({"amount": "10", "api_key": 999999}, "api_key"),
    ({"amount": "10", "pool": "has spaces"}, "pool"),
])
def test_a_budget_needs_one_free_scope_and_a_positive_amount(api, db, body, field):
    key = api_key()
    budget(amount="1", pool_id="taken")
    body = {name: key.pk if value == "KEY" else value for name, value in body.items()}

    response = api.post("/api/finops/budgets/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_only_staff_change_budgets(viewer_api, db):
    budget(amount="1", pool_id="p")

    assert viewer_api.get("/api/finops/budgets/").json()["count"] == 1
    assert viewer_api.post("/api/finops/budgets/", {"pool": "q", "amount": "1"}, format="json").status_code == 403
    assert Decimal(viewer_api.get("/api/finops/budgets/").json()["results"][0]["amount"]) == 1
