import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")

# BrokerAMQP: Celery's AMQP helper with a connection that survives broker outages (inventiv/broker.py).
# OnCommitTask: every task enqueues after commit without failing the committed work when the broker is down
# (inventiv/enqueue.py).
app = Celery("inventiv", amqp="inventiv.broker:BrokerAMQP", task_cls="inventiv.enqueue:OnCommitTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _quiet_reconnect_warning(**kwargs) -> None:
    """Celery prints nine lines at every broker reconnect to say that a later version will cancel running
    tasks by default; settings chooses explicitly (CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS).
    Added once the worker is ready: setting up its logging puts an "always show" filter in front before."""
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5\.1 we introduced", category=CPendingDeprecationWarning)


@task_prerun.connect
def _drop_unusable_connections(task=None, **kwargs) -> None:
    """Before each task, close a database connection that broke or outlived CONN_MAX_AGE (Django does this
    around each request; Celery reuses connections across tasks under CELERY_DB_REUSE_MAX). Not for an eager
    task: it runs inside its caller's transaction, on the caller's connection."""
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
