"""Which instances the routing table offers, read from the database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from instances.status import Status
from instances.tests.factories import make_instance, set_setting
from monitoring.models import WorkerState
from router.table import load_routing_table
from router.tests.factories import MODEL, new_engine_key, serving_instance

pytestmark = pytest.mark.django_db

READY, DRAINING = WorkerState.WorkerStatus.READY, WorkerState.WorkerStatus.DRAINING


def with_worker(instance, *, status=READY, heartbeat_age_s: float = 0.0, waiting=0):
    WorkerState.objects.create(
        instance_id=instance.pk, status=status, last_heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_s),
        engine={"running": 1, "waiting": waiting},
    )
    return instance


def routable_ids(table, model=MODEL) -> set[str]:
    return {c.instance_id for c in table.routable.get(model, ())}


def test_a_ready_instance_is_offered_with_its_address_and_engine_key(seed):
    key = new_engine_key()
    instance = serving_instance(port=18000, engine_key=key)
    (candidate,) = load_routing_table().candidates[MODEL]
    assert candidate.instance_id == str(instance.pk)
    assert candidate.base_url == "http://127.0.0.1:18000"
    assert candidate.authorization == f"Bearer {key}"
    assert key not in repr(candidate)


def test_only_ready_instances_with_a_ready_fresh_worker_are_routable(seed):
    set_setting("heartbeat_interval_s", 5)
    set_setting("heartbeat_stale_missed", 3)
    fresh = with_worker(serving_instance(port=18001, engine_key=new_engine_key()), heartbeat_age_s=14, waiting=4)
    stale = with_worker(serving_instance(port=18002, engine_key=new_engine_key()), heartbeat_age_s=16)
    with_worker(serving_instance(port=18003, engine_key=new_engine_key()), status=DRAINING)
    serving_instance(port=18004, engine_key=new_engine_key(), status=Status.DRAINING)
    no_worker = serving_instance(port=18005, engine_key=new_engine_key())
    make_instance(status=Status.READY, with_server=False)  # no engine address: the Mock `none` runtime

    table = load_routing_table()

    assert routable_ids(table) == {str(fresh.pk), str(no_worker.pk)}
    assert {c.instance_id for c in table.candidates[MODEL]} == {str(fresh.pk), str(no_worker.pk), str(stale.pk)}
    assert {c.instance_id: c.waiting for c in table.routable[MODEL]}[str(fresh.pk)] == 4


def test_an_instance_whose_engine_key_cannot_be_read_is_skipped(seed):
    instance = serving_instance(port=18006, engine_key=new_engine_key())
    type(instance).objects.filter(pk=instance.pk).update(engine_api_key_encrypted="garbage")
    assert load_routing_table().candidates == {}


def test_catalog_models_are_known_even_without_instances(seed):
    table = load_routing_table()
    assert "Qwen/Qwen2.5-7B-Instruct" in table.known_models
    assert "no-such-model" not in table.known_models
    assert table.routable == {}
