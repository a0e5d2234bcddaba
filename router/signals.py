"""What tells the routers that something they route on changed (router/changes.py): API keys saved or
deleted, instances entering or leaving `ready` (instances.lifecycle.status_changed, sent after the
commit), and the models that make up the pool directory (settings.ROUTER_DIRECTORY_MODELS, by label:
the router does not import autoscaling). Connected in RouterConfig.ready()."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from instances.lifecycle import status_changed
from instances.status import Status
from router import changes
from router.models import ApiKey, RequestTrace


def connect() -> None:
    status_changed.connect(instance_status_changed, dispatch_uid="router-instance-status")
    post_save.connect(api_key_saved, sender=ApiKey, dispatch_uid="router-key-saved")
    post_delete.connect(api_key_deleted, sender=ApiKey, dispatch_uid="router-key-deleted")
    post_save.connect(directory_changed, dispatch_uid="router-directory-saved")
    post_delete.connect(directory_changed, dispatch_uid="router-directory-deleted")


def instance_status_changed(sender, *, instance, before, after, **kwargs) -> None:
    """Sent after the commit. Leaving `ready` (a drain, a failure, a termination) stops traffic on every
    replica before this returns. Entering it asks every replica to reload without waiting for them: the
    thread that made an instance ready (a Celery worker's, the heartbeat's) is not held for a reload per
    instance, and a burst of readies makes a few reloads instead of one each (router/refresher.py)."""
    if before == Status.READY and after != Status.READY:
        changes.announce(changes.INSTANCE_LEFT, instance_id=str(instance.pk))
    elif after == Status.READY and before != Status.READY:
        changes.announce(changes.INSTANCES, wait=False)


def api_key_saved(sender, *, instance: ApiKey, created: bool, **kwargs) -> None:
    if instance.revoked_at is not None:
        changes.announce_on_commit(changes.KEY_REVOKED, key_hash=instance.key_hash)
    else:
        changes.announce_on_commit(changes.KEYS)


def api_key_deleted(sender, *, instance: ApiKey, **kwargs) -> None:
    # Traces name their key without a database constraint (router/models.py). Django nulled the key's
    # traces before deleting it; a usage flush that committed in between wrote more: null them too, now
    # that the key's row is gone (a later flush finds no row to update and writes no key: router/usage.py).
    RequestTrace.objects.filter(api_key_id=instance.pk).update(api_key=None)
    changes.announce_on_commit(changes.KEY_REVOKED, key_hash=instance.key_hash)


def directory_changed(sender, **kwargs) -> None:
    if sender._meta.label in settings.ROUTER_DIRECTORY_MODELS:
        changes.announce_on_commit(changes.POOLS)
