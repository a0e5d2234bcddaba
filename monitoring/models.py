"""Action types (the catalog of everything Inventiv logs) and, later, action logs and heartbeats."""

from django.db import models


class ActionTypeManager(models.Manager):
    def get_by_natural_key(self, code):
        return self.get(code=code)


class ActionType(models.Model):
    class Category(models.TextChoices):
        REQUEST = "request", "Request"
        EXECUTE = "execute", "Execution"
        PROVIDER = "provider", "Provider"
        WORKER = "worker", "Worker"
        LIFECYCLE = "lifecycle", "Lifecycle"
        HEALTH = "health", "Health"
        RECONCILE = "reconcile", "Reconciliation"
        SCALING = "scaling", "Scaling"
        CATALOG = "catalog", "Catalog"

    code = models.CharField(max_length=60, unique=True)
    label = models.CharField(max_length=100)
    icon = models.CharField(max_length=50)
    color = models.CharField(max_length=20)
    category = models.CharField(max_length=20, choices=Category.choices)
    active = models.BooleanField(default=True)

    objects = ActionTypeManager()

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code

    def natural_key(self):
        return (self.code,)
