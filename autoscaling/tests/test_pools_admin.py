"""Django admin of pools: the lists open, a pool is added with its choices under the same rules as the API,
and a pool with live members cannot be deleted there either."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from autoscaling.models import Pool, PoolSample
from autoscaling.pools import DEFAULTS, Choice, create_pool
from catalog.models import InstanceType, LlmModel, Zone
from instances.status import Status
from instances.tests.factories import make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user, seed):
    client.force_login(admin_user)
    return client


def new_pool(name: str = "echo") -> Pool:
    mock = Choice(InstanceType.objects.get(code="MOCK-GPU-S"), Zone.objects.get(code="mock-eu-1"))
    return create_pool(name=name, model=LlmModel.objects.get(code="mock-echo"), choices=[mock])


def add_form(*, model: str, choices: list[tuple[str, str]], **changes) -> dict:
    data = {
        "name": "echo", "model": LlmModel.objects.get(code=model).pk,
        **{key: ("on" if value is True else "" if value is None else value)
           for key, value in {**DEFAULTS, **changes}.items() if value is not False},
        "choices-TOTAL_FORMS": len(choices), "choices-INITIAL_FORMS": 0,
        "choices-MIN_NUM_FORMS": 0, "choices-MAX_NUM_FORMS": 1000,
    }
    for i, (type_code, zone_code) in enumerate(choices):
        data[f"choices-{i}-position"] = i + 1
        data[f"choices-{i}-instance_type"] = InstanceType.objects.get(code=type_code).pk
        data[f"choices-{i}-zone"] = Zone.objects.get(code=zone_code).pk
    return data


def test_the_lists_and_a_pool_page_open(admin_client):
    pool = new_pool()
    PoolSample.objects.create(pool=pool, at=timezone.now() - timedelta(minutes=1), reason="hold: at min")

    assert "echo" in admin_client.get(reverse("admin:autoscaling_pool_changelist") + "?q=echo").content.decode()
    samples = admin_client.get(reverse("admin:autoscaling_poolsample_changelist"))
    assert samples.status_code == 200 and "hold: at min" in samples.content.decode()
    page = admin_client.get(reverse("admin:autoscaling_pool_change", args=[pool.pk]))
    assert page.status_code == 200 and "MOCK-GPU-S" in page.content.decode()


def test_a_pool_is_added_with_its_choices(admin_client):
    data = add_form(model="mock-echo", choices=[("MOCK-GPU-S", "mock-eu-1")], max_size=2)

    response = admin_client.post(reverse("admin:autoscaling_pool_add"), data)

    assert response.status_code == 302
    assert [c.instance_type.code for c in Pool.objects.get(name="echo").choices.all()] == ["MOCK-GPU-S"]


def test_the_admin_refuses_what_the_api_refuses(admin_client):
    data = add_form(model="Qwen/Qwen2.5-72B-Instruct", choices=[("L4-1-24G", "fr-par-2")], min_size=3, max_size=2)

    response = admin_client.post(reverse("admin:autoscaling_pool_add"), data)

    html = response.content.decode()
    assert response.status_code == 200 and not Pool.objects.exists()
    assert "min_size 3 is above max_size 2" in html
    assert "needs 160 GB of VRAM" in html


def test_a_pool_with_live_members_has_no_delete_in_the_admin(admin_client):
    pool = new_pool()
    make_instance(status=Status.READY, with_server=False, pool=pool)

    assert admin_client.get(reverse("admin:autoscaling_pool_delete", args=[pool.pk])).status_code == 403
