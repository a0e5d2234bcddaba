"""Catalog services: compatibility, zone offers, provider moves and typed runtime settings."""

import pytest
from django.core.exceptions import ValidationError

from catalog import runtime_settings, services
from catalog.models import InstanceTypeZone, Provider, RuntimeSetting
from catalog.tests.factories import make_instance_type, make_model, make_provider, make_region, make_zone

pytestmark = pytest.mark.django_db


@pytest.fixture
def clouds():
    """One Scaleway-like provider and one Mock provider, each with a zone."""
    real = make_provider(code="real")
    mock = make_provider(code="mock", adapter=Provider.Adapter.MOCK)
    return {
        "real": real,
        "mock": mock,
        "real_zone": make_zone(region=make_region(provider=real), code="real-1"),
        "mock_zone": make_zone(region=make_region(provider=mock), code="mock-1"),
    }


def test_a_model_is_compatible_when_the_planner_finds_a_plan(clouds):
    two_l40s = make_instance_type(provider=clouds["real"], gpu_count=2, vram_per_gpu_gb=48)

    assert services.is_compatible(make_model(vram_required_gb=96), two_l40s)
    reason = services.incompatibility_reason(make_model(code="org/big", vram_required_gb=97), two_l40s)
    assert reason.startswith("org/big needs 97 GB of VRAM; " + f"{two_l40s.code} has 2 x 48 GB")
    heavy = make_model(code="org/heavy", weights_gb=90)
    assert "does not fit" in services.incompatibility_reason(heavy, two_l40s)
    assert two_l40s not in services.compatible_instance_types(heavy)


def test_a_real_model_without_its_shape_is_planned_nowhere(clouds):
    l4 = make_instance_type(provider=clouds["real"])
    unknown = make_model(code="org/unknown", layers=0)

    assert "no shape in the catalog" in services.incompatibility_reason(unknown, l4)
    assert list(services.compatible_models(l4)) == []


def test_a_simulated_model_runs_only_on_mock_machines(clouds):
    echo = make_model(code="mock-echo", vram_required_gb=0, mock_only=True)
    real_type = make_instance_type(provider=clouds["real"])
    mock_type = make_instance_type(provider=clouds["mock"])

    assert "only on Mock machines" in services.incompatibility_reason(echo, real_type)
    assert list(services.compatible_instance_types(echo)) == [mock_type]
    assert list(services.compatible_models(mock_type)) == [echo]


def test_a_real_model_runs_on_mock_machines_only_when_the_simulator_is_allowed(clouds):
    mock_type = make_instance_type(provider=clouds["mock"])
    plain = make_model(code="org/plain")
    simulated = make_model(code="org/simulated", allow_simulator=True)

    assert "allow_simulator" in services.incompatibility_reason(plain, mock_type)
    assert list(services.compatible_models(mock_type)) == [simulated]


def test_it_replaces_zone_offers_and_keeps_the_availability_of_kept_ones(clouds):
    other_zone = make_zone(region=clouds["real_zone"].region, code="real-2")
    instance_type = make_instance_type(provider=clouds["real"], zones=(clouds["real_zone"],))
    InstanceTypeZone.objects.filter(instance_type=instance_type).update(availability="shortage")

    services.set_instance_type_zones(instance_type, zones=[clouds["real_zone"], other_zone, other_zone])

    offers = dict(instance_type.zone_offers.values_list("zone__code", "availability"))
    assert offers == {"real-1": "shortage", "real-2": "available"}
    assert services.is_offered(instance_type, other_zone)


def test_it_refuses_another_providers_zone_and_changes_nothing(clouds):
    instance_type = make_instance_type(provider=clouds["real"], zones=(clouds["real_zone"],))

    with pytest.raises(ValidationError) as refused:
        services.set_instance_type_zones(instance_type, zones=[clouds["mock_zone"]])

    assert "mock-1" in refused.value.message_dict["zones"][0]
    assert list(instance_type.zones.all()) == [clouds["real_zone"]]
    assert "belongs to mock" in services.offer_rejection_reason(instance_type=instance_type, zone=clouds["mock_zone"])


def test_a_type_offered_in_its_providers_zones_cannot_change_provider(clouds):
    instance_type = make_instance_type(provider=clouds["real"], zones=(clouds["real_zone"],))

    with pytest.raises(ValidationError, match="real-1"):
        services.validate_instance_type_provider(instance_type, provider=clouds["mock"])
    services.validate_instance_type_provider(instance_type, provider=clouds["real"])


def test_a_region_or_zone_with_offers_cannot_move_to_another_provider(clouds):
    make_instance_type(provider=clouds["real"], zones=(clouds["real_zone"],))

    with pytest.raises(ValidationError):
        services.validate_region_provider(clouds["real_zone"].region, provider=clouds["mock"])
    with pytest.raises(ValidationError):
        services.validate_zone_region(clouds["real_zone"], region=clouds["mock_zone"].region)
    # Zones without offers move freely.
    services.validate_zone_region(clouds["mock_zone"], region=clouds["real_zone"].region)


@pytest.mark.parametrize(
    ("value_type", "raw", "expected"),
    [("int", " 42 ", 42), ("float", "0.5", 0.5), ("bool", "Yes", True), ("bool", "0", False), ("str", " a ", "a")],
)
def test_it_parses_setting_values_by_type(value_type, raw, expected):
    assert runtime_settings.parse_setting_value(value_type=value_type, raw=raw) == expected


@pytest.mark.parametrize(
    ("value_type", "raw", "reason"),
    [
        ("int", "1.5", "'1.5' is not a valid int"),
        ("float", "nan", "'nan' is not a valid float"),
        ("bool", "maybe", "'maybe' is not a valid bool"),
        ("int", "101", "101 is above the maximum 100"),
    ],
)
def test_it_refuses_setting_values_that_do_not_parse_or_fit(value_type, raw, reason):
    with pytest.raises(ValidationError) as refused:
        runtime_settings.parse_setting_value(value_type=value_type, raw=raw, min_value=0, max_value=100)

    assert refused.value.message_dict == {"value": [reason]}


def test_it_reads_the_code_default_when_a_setting_has_no_row():
    assert runtime_settings.get_setting("drain_timeout_s") == 300


def test_it_falls_back_to_the_default_when_a_stored_value_is_out_of_range():
    RuntimeSetting.objects.create(key="drain_timeout_s", value_type="int", value="-3", default="300", min_value=0)

    assert runtime_settings.get_setting("drain_timeout_s") == 300


def test_it_stores_an_updated_setting_in_canonical_text():
    row = RuntimeSetting.objects.create(key="flag", value_type="bool", value="false", default="false")

    runtime_settings.update_setting(row, value="YES")

    row.refresh_from_db()
    assert row.value == "true"


def test_it_refuses_an_unknown_setting_key():
    with pytest.raises(KeyError, match="no_such_setting"):
        runtime_settings.get_setting("no_such_setting")
