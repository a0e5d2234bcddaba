"""Cost per million tokens per model and per API key, beside the list-price view."""

from decimal import Decimal

import pytest

from finops import selectors
from finops.services import accrue_costs
from finops.tests.factories import LARGE, START, api_key, billed_instance, minutes, trace

pytestmark = pytest.mark.django_db
QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture
def served_hour(seed, clock):
    """09:00-10:00: mock-echo on a small machine (the hour) and a large one (its last 30 min, still running);
    Qwen on a small machine (the hour). Two keys share the traffic."""
    ten = START.replace(second=0)
    billed_instance(since=ten - minutes(60), until=ten)
    billed_instance(since=ten - minutes(30), type_code=LARGE)
    billed_instance(since=ten - minutes(60), until=ten, model=QWEN)
    alice, bob = api_key("alice"), api_key("bob")
    trace(key=alice, at=ten - minutes(50), prompt=200_000, completion=50_000)
    trace(key=alice, at=ten - minutes(10), prompt=100_000, completion=50_000)
    trace(key=bob, at=ten - minutes(5), prompt=50_000, completion=50_000)
    trace(key=bob, at=ten - minutes(20), model=QWEN, prompt=200_000, completion=50_000)
    trace(key=bob, at=ten - minutes(61), prompt=999_999)  # before the window
    accrue_costs()
    return {"start": ten - minutes(60), "end": ten, "alice": alice, "bob": bob}


def test_cost_per_million_tokens_of_a_model_served_by_two_instances_matches_a_hand_computation(served_hour):
    costs = selectors.token_costs(start=served_hour["start"], end=served_hour["end"])

    echo = next(row for row in costs["models"] if row["model"] == "mock-echo")
    # GPU cost: 0.25 EUR/h x 1 h + 0.75 EUR/h x 0.5 h = 0.625 EUR; tokens: 250k + 150k + 100k = 500k.
    assert (echo["cost"], echo["tokens"]) == (Decimal("0.625"), 500_000)
    assert echo["cost_per_million"] == Decimal("1.25")  # 0.625 / 500,000 x 1e6
    qwen = next(row for row in costs["models"] if row["model"] == QWEN)
    assert (qwen["cost"], qwen["tokens"], qwen["cost_per_million"]) == (Decimal("0.25"), 250_000, Decimal("1"))


def test_each_key_pays_its_share_of_each_models_cost(served_hour):
    costs = selectors.token_costs(start=served_hour["start"], end=served_hour["end"])

    by_name = {row["name"]: row for row in costs["api_keys"]}
    # alice: 400k of mock-echo's 500k -> 0.5 EUR. bob: 100k of 500k (0.125) + all of Qwen (0.25) = 0.375 EUR
    # for 350k tokens -> 1.071429 EUR per million.
    assert (by_name["alice"]["cost"], by_name["alice"]["tokens"]) == (Decimal("0.5"), 400_000)
    assert by_name["alice"]["cost_per_million"] == Decimal("1.25")
    assert (by_name["bob"]["cost"], by_name["bob"]["tokens"]) == (Decimal("0.375"), 350_000)
    assert by_name["bob"]["cost_per_million"] == Decimal("1.071429")


def test_the_list_price_view_divides_the_hourly_price_now_by_the_observed_tokens_per_hour(served_hour):
    costs = selectors.token_costs(start=served_hour["start"], end=served_hour["end"])

    echo = next(row for row in costs["models"] if row["model"] == "mock-echo")
    # Only the large machine is still paid for: 0.75 EUR/h; 500k tokens in the hour.
    assert (echo["hourly_price"], echo["tokens_per_hour"]) == (Decimal("0.75"), Decimal("500000"))
    assert echo["list_price_per_million"] == Decimal("1.5")
    qwen = next(row for row in costs["models"] if row["model"] == QWEN)
    assert (qwen["hourly_price"], qwen["list_price_per_million"]) == (Decimal("0"), Decimal("0"))


def test_a_model_with_gpu_cost_and_no_tokens_has_no_cost_per_million(seed, clock):
    billed_instance(since=START - minutes(60))
    accrue_costs()

    costs = selectors.token_costs(start=START - minutes(60), end=START)

    assert costs["models"][0]["cost_per_million"] is None
    assert costs["models"][0]["list_price_per_million"] is None
    assert costs["api_keys"] == []
