import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")

app = Celery("inventiv")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _drop_unusable_connections(task=None, **kwargs) -> None:
    """Before each task, close a database connection that broke or outlived CONN_MAX_AGE (Django does this
    around each request; Celery reuses connections across tasks under CELERY_DB_REUSE_MAX). Not for an eager
    task: it runs inside its caller's transaction, on the caller's connection."""
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
