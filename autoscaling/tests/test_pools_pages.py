"""The Pools pages through Django's test client: the list and its form, one pool's page, edit, enable and
disable, delete. The forms go through the pools service, so its errors show next to the field they name."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from autoscaling.models import Pool, PoolSample
from autoscaling.pools import DEFAULTS, Choice, create_pool
from catalog.models import InstanceType, LlmModel, Zone
from instances.status import Status
from instances.tests.factories import make_instance
from monitoring.models import ActionLog

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BIG_MODEL = "Qwen/Qwen2.5-72B-Instruct"


@pytest.fixture
def staff(client, admin_user, seed):
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(client, viewer_user, seed):
    client.force_login(viewer_user)
    return client


def script_data(html: str, script_id: str):
    """The JSON a page hands its scripts in `<script id=script_id type="application/json">`."""
    opening = f'<script id="{script_id}" type="application/json">'
    start = html.index(opening) + len(opening)
    return json.loads(html[start:html.index("</script>", start)])


def offer(type_code: str, zone_code: str) -> str:
    """The value of an (instance type, zone) option in the form's choice selects."""
    return f"{InstanceType.objects.get(code=type_code).pk}:{Zone.objects.get(code=zone_code).pk}"


def form_data(*, choices=(("MOCK-GPU-S", "mock-eu-1"),), **changes) -> dict:
    """What the form posts: every setting at its default unless changed (a checkbox left out is off)."""
    values = {"name": "echo", "model": "mock-echo", **DEFAULTS, **changes}
    data = {key: ("on" if value is True else "" if value is None else value)
            for key, value in values.items() if value is not False}
    data.update({f"choices_{i}": offer(*pair) for i, pair in enumerate(choices)})
    return data


def new_pool(name: str = "echo", **settings) -> Pool:
    mock = Choice(InstanceType.objects.get(code="MOCK-GPU-S"), Zone.objects.get(code="mock-eu-1"))
    return create_pool(name=name, model=LlmModel.objects.get(code="mock-echo"), choices=[mock], **settings)


def test_the_pages_need_a_signed_in_user(client, seed):
    new_pool()
    for url in ("/pools/", "/pools/echo/", "/pools/echo/delete/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_pools_page_lists_each_pool_with_its_size_and_last_reason(viewer):
    pool = new_pool(max_size=3)
    make_instance(status=Status.READY, with_server=False, pool=pool)
    Pool.objects.filter(pk=pool.pk).update(desired_size=2, last_reason="scale up: load 9 over target 8",
                                           last_decision_at=timezone.now())

    html = viewer.get("/pools/").content.decode()

    assert 'href="/pools/"' in html and ">Pools<" in html  # in the nav
    assert 'id="pool-echo"' in html and 'data-size="1" data-desired="2"' in html
    assert "scale up: load 9 over target 8" in html and "MOCK-GPU-S · mock-eu-1" in html
    # One member short of the desired size: converging (the whole table refreshes itself, README "Using it").
    assert 'data-converging="true"' in html and '<section id="pools-live" data-live>' in html
    assert "pool-create-form" not in html  # viewers get no form


def test_a_settled_pool_row_is_not_converging(viewer):
    pool = new_pool()
    make_instance(status=Status.READY, with_server=False, pool=pool)
    Pool.objects.filter(pk=pool.pk).update(desired_size=1)

    assert 'data-converging="false"' in viewer.get("/pools/").content.decode()


def test_staff_create_a_pool_through_the_form(staff):
    data = form_data(max_size=3, choices=[("MOCK-4GPU-M", "mock-eu-1"), ("MOCK-GPU-S", "mock-eu-1")])

    response = staff.post("/pools/new/", data)

    assert response.status_code == 302 and response["Location"] == "/pools/echo/"
    pool = Pool.objects.get()
    assert (pool.model.code, pool.min_size, pool.max_size, pool.enabled) == ("mock-echo", 1, 3, True)
    assert [c.instance_type.code for c in pool.choices.all()] == ["MOCK-4GPU-M", "MOCK-GPU-S"]


def test_a_pool_created_with_htmx_joins_the_list_and_the_form_is_reset(staff):
    response = staff.post("/pools/new/", form_data(), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and 'id="create-panel"' in html
    assert 'Pool <a href="/pools/echo/">echo</a> created' in html
    assert 'hx-swap-oob="afterbegin:#pool-rows"' in html and 'id="pool-echo"' in html
    assert Pool.objects.filter(name="echo").exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"min_size": 4, "max_size": 2}, "min_size", "min_size 4 is above max_size 2"),
        ({"model": BIG_MODEL, "choices": [("L4-1-24G", "fr-par-2")]}, "choices", "needs 160 GB of VRAM"),
        ({"scale_to_zero": True}, "scale_to_zero", "needs min_size 0"),
        ({"choices": []}, "choices", "At least one (instance type, zone) is needed"),
        ({"name": "not a slug"}, "name", "letters, digits"),
    ],
)
def test_an_invalid_pool_is_shown_next_to_its_field_and_not_saved(staff, changes, field, message):
    for headers in ({}, HTMX):
        response = staff.post("/pools/new/", form_data(**changes), **headers)

        html = response.content.decode()
        assert response.status_code == 200
        assert f'data-error-for="{field}"' in html and message in html
    assert not Pool.objects.exists()


def test_viewers_cannot_create_pools(viewer):
    assert viewer.post("/pools/new/", form_data()).status_code == 403
    assert not Pool.objects.exists()


def test_the_pool_page_shows_settings_members_chart_and_decisions(staff, admin_user):
    pool = new_pool(max_size=3, actor=admin_user)
    member = make_instance(status=Status.BOOTING, with_server=False, pool=pool)
    now = timezone.now()
    for seconds_ago, desired, reason in [(40, 1, "hold: at min"), (30, 1, "hold: at min"), (20, 2, "scale up: load 12"),
                                         (10, 2, "scale up: load 12")]:
        PoolSample.objects.create(pool=pool, at=now - timedelta(seconds=seconds_ago), ready=1, desired=desired,
                                  in_flight=4, reason=reason)

    response = staff.get("/pools/echo/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Pool echo" in html and "#1 MOCK-GPU-S in mock-eu-1" in html
    assert f'data-member="{member.pk}"' in html and 'data-status="booting"' in html
    assert 'id="pool-chart-data"' in html and "js/charts.js" in html and 'data-chart="pool"' in html
    chart = script_data(html, "pool-chart-data")
    assert chart["desired"] == [1, 1, 2, 2] and chart["size"] == [1, 1, 1, 1] and chart["load"] == [4, 4, 4, 4]
    # Decisions: the first sample, then each change of mind (the repeated ones are left out).
    assert [s.reason for s in response.context["decisions"]] == ["scale up: load 12", "hold: at min"]
    assert "created by admin" in html  # the operator's own change, from the action log
    assert 'id="pool-edit-form"' in html and "Disable" in html


def test_the_live_part_refreshes_alone_while_the_pool_converges(staff):
    pool = new_pool()
    make_instance(status=Status.STARTING, with_server=False, pool=pool)

    response = staff.get("/pools/echo/", **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="pool-live" data-converging="true"')
    assert 'data-live>' in html


def test_editing_a_pool_saves_through_the_service(staff):
    new_pool()
    data = form_data(max_size=4, choices=[("MOCK-4GPU-M", "mock-eu-1")])
    del data["name"]

    response = staff.post("/pools/echo/edit/", data)

    assert response.status_code == 302 and response["Location"] == "/pools/echo/"
    pool = Pool.objects.get()
    assert pool.max_size == 4 and [c.instance_type.code for c in pool.choices.all()] == ["MOCK-4GPU-M"]


def test_an_invalid_edit_shows_its_errors_and_changes_nothing(staff):
    new_pool(max_size=2)
    data = form_data(min_size=3, max_size=2, scale_up_window_s=500)

    response = staff.post("/pools/echo/edit/", data, **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="edit-panel">')
    assert 'data-error-for="min_size"' in html and 'data-error-for="scale_up_window_s"' in html
    assert Pool.objects.get().min_size == 1


def test_disabling_and_enabling_a_pool(staff):
    new_pool()

    response = staff.post("/pools/echo/toggle/", **HTMX)

    assert not Pool.objects.get().enabled
    assert 'data-enabled="false"' in response.content.decode() and "Enable" in response.content.decode()
    assert staff.post("/pools/echo/toggle/").status_code == 302
    assert Pool.objects.get().enabled
    assert list(ActionLog.objects.filter(metadata__pool="echo").values_list("metadata__change", flat=True)
                .order_by("id")) == ["created", "disabled", "enabled"]


def test_deleting_a_pool_asks_first(staff):
    new_pool()

    confirm = staff.get("/pools/echo/delete/")
    assert confirm.status_code == 200 and "Delete pool echo" in confirm.content.decode()
    assert Pool.objects.exists()

    response = staff.post("/pools/echo/delete/")
    assert response.status_code == 302 and response["Location"] == "/pools/"
    assert not Pool.objects.exists()


def test_a_pool_with_live_members_is_not_deleted(staff):
    pool = new_pool()
    make_instance(status=Status.READY, with_server=False, pool=pool)

    response = staff.post("/pools/echo/delete/")

    assert response.status_code == 409 and "still has 1 live instance" in response.content.decode()
    assert Pool.objects.exists()


def test_an_unknown_pool_is_a_404(viewer):
    assert viewer.get("/pools/nope/").status_code == 404
