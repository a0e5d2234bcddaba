"""The project-wide display filters: short ids, compact ages, fractions as percentages."""

import uuid
from decimal import Decimal

import pytest
from django.template import Context, Template

from inventiv.templatetags.display import ago, percent, short_id


def render(source: str, **context) -> str:
    return Template("{% load display %}" + source).render(Context(context))


def test_a_short_id_is_the_first_eight_characters_of_a_uuid_or_its_text():
    value = uuid.UUID("0f8e2a6c-1234-4abc-8def-001122334455")
    assert short_id(value) == short_id(str(value)) == "0f8e2a6c"
    assert short_id(None) == ""


@pytest.mark.parametrize(("seconds", "label"), [
    (0, "0 s ago"), (3.4, "3 s ago"), (89, "89 s ago"), (90, "2 min ago"), (120, "2 min ago"),
    (89 * 60, "89 min ago"), (90 * 60, "2 h ago"), (5 * 3600, "5 h ago"), (-2, "0 s ago"),
])
def test_an_age_reads_in_seconds_then_minutes_then_hours(seconds, label):
    assert ago(seconds) == label


@pytest.mark.parametrize("missing", [None, "", "soon"])
def test_a_missing_age_reads_as_a_dash(missing):
    assert ago(missing) == "—"


def test_a_fraction_reads_as_a_percentage_and_anything_else_stays_none():
    assert percent(0.41) == pytest.approx(41.0)
    assert percent(Decimal("0.5")) == Decimal("50.0") and percent(1) == 100
    assert percent(None) is None and percent("0.4") is None and percent(True) is None


def test_the_filters_render_in_templates_even_for_a_missing_value():
    assert render("{{ id|short_id }} {{ age|ago }} {{ kv|percent|floatformat:1 }}%",
                  id=uuid.UUID(int=0), age=150, kv=0.413) == "00000000 2 min ago 41.3%"
    assert render("[{{ nothing.here|ago }}]") == "[—]"
