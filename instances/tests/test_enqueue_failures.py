"""Work the API accepted is saved and answered 202 even when the task queue cannot take its task; the beat
sweeps finish it once the queue is back. The broker is the edge faked here: it refuses every message, as
Redis does when it is down (kombu's OperationalError, "Connection refused")."""

import logging

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from catalog.models import InstanceType, LlmModel, Zone
from instances.draining import sweep_drains
from instances.models import Instance
from instances.status import Status
from instances.sweeps import TERMINATOR_GRACE_S, sweep_lost_provisions, sweep_startup_health, sweep_terminating
from instances.tests.factories import MOCK_REQUEST, clock, make_instance, mock_cloud  # noqa: F401 (fixtures)
from inventiv.enqueue import OnCommitTask
from monitoring.models import ActionLog

# Real commits: the view must see its service's on-commit enqueue fail before it answers.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/instances/"
PROVISION_REQUEUE_AFTER_S = 30  # the seeded provision_requeue_after_s


class Broker:
    """The task queue as the app sees it: up (eager tasks, as in every test) or refusing connections."""

    def __init__(self, monkeypatch):
        self.down = False
        self.refused = 0
        send = OnCommitTask.apply_async

        def apply_async(task, *args, **kwargs):
            if self.down:
                self.refused += 1
                raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
            return send(task, *args, **kwargs)

        monkeypatch.setattr(OnCommitTask, "apply_async", apply_async)


@pytest.fixture
def broker(monkeypatch):
    return Broker(monkeypatch)


def status_of(instance_id) -> str:
    return Instance.objects.get(pk=instance_id).status


def assert_accepted_for_the_sweeps(response, *, sweep: str) -> dict:
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["enqueued"] is False
    assert sweep in body["note"] and "Do not ask again" in body["note"]
    return body


def test_a_create_while_the_queue_is_down_is_saved_answered_202_and_provisioned_by_the_sweep(
        api, mock_cloud, broker, clock, caplog):
    broker.down = True
    with caplog.at_level(logging.WARNING, logger="inventiv.enqueue"):
        response = api.post(URL, MOCK_REQUEST, format="json")

    body = assert_accepted_for_the_sweeps(response, sweep="lost-provisions sweep")
    assert status_of(body["id"]) == Status.PROVISIONING
    assert ActionLog.objects.filter(instance_id=body["id"], action_type="REQUEST_CREATE").exists()
    assert [record.levelname for record in caplog.records] == ["WARNING"]  # one line, no traceback
    assert "provision_instance_task" in caplog.records[0].getMessage()

    broker.down = False
    clock.advance(PROVISION_REQUEUE_AFTER_S + 1)
    sweep_lost_provisions()

    assert status_of(body["id"]) == Status.READY


def test_a_create_with_the_queue_up_says_it_was_enqueued(api, mock_cloud, broker):
    response = api.post(URL, MOCK_REQUEST, format="json")

    assert response.status_code == 202
    assert (response.json()["enqueued"], response.json()["note"]) == (True, "")
    assert broker.refused == 0


def test_a_terminate_while_the_queue_is_down_is_answered_202_and_finished_by_the_terminator(
        api, mock_cloud, broker, clock):
    instance = make_instance(status=Status.READY)
    broker.down = True

    response = api.post(f"{URL}{instance.pk}/terminate/", {}, format="json")

    assert_accepted_for_the_sweeps(response, sweep="terminator sweep")
    assert status_of(instance.pk) == Status.TERMINATING

    broker.down = False
    clock.advance(TERMINATOR_GRACE_S + 1)
    sweep_terminating()

    assert status_of(instance.pk) == Status.TERMINATED


def test_a_drain_while_the_queue_is_down_is_answered_202_and_finished_by_the_drains_sweep(api, mock_cloud, broker):
    instance = make_instance(status=Status.READY)
    broker.down = True

    response = api.post(f"{URL}{instance.pk}/drain/", {}, format="json")

    assert_accepted_for_the_sweeps(response, sweep="drains sweep")
    assert status_of(instance.pk) == Status.DRAINING

    broker.down = False
    sweep_drains()  # no worker agent reports work on this machine: the drain is over

    assert status_of(instance.pk) in (Status.TERMINATING, Status.TERMINATED)


def test_a_reinstall_while_the_queue_is_down_is_answered_202_and_checked_by_the_health_sweep(
        api, mock_cloud, broker):
    instance = make_instance(status=Status.READY)
    broker.down = True

    response = api.post(f"{URL}{instance.pk}/reinstall/")

    assert_accepted_for_the_sweeps(response, sweep="startup-health sweep")
    assert status_of(instance.pk) in (Status.INSTALLING, Status.STARTING)

    broker.down = False
    sweep_startup_health()

    assert status_of(instance.pk) == Status.READY


def test_a_create_from_the_page_while_the_queue_is_down_is_saved_and_says_so(client, admin_user, mock_cloud, broker):
    client.force_login(admin_user)
    broker.down = True
    form = {"zone": Zone.objects.get(code="mock-eu-1").pk,
            "instance_type": InstanceType.objects.get(code="MOCK-GPU-S").pk,
            "model": LlmModel.objects.get(code="mock-echo").pk}

    response = client.post(reverse("instances:create"), form, follow=True)

    assert "The task queue is unreachable" in response.content.decode()
    assert Instance.objects.get().status == Status.PROVISIONING
