"""Cost accounting: a per-minute cost series, the cursor of its computation, and monthly budgets."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from finops import calc

# A minute of a 0.25 EUR/h machine is 0.00416666...: twelve places keep the rounding error of a year of minutes
# of a whole fleet far below a cent. Totals are rounded when they are read (finops/calc.py).
AMOUNT_DIGITS, AMOUNT_PLACES = 24, 12


class CostCursor(models.Model):
    """How far the cost series is computed: every minute that starts before `computed_until` is done.

    One row (name "cost"). It moves in the same transaction as the rows it accounts for, so a crash
    leaves either both or neither.
    """

    name = models.CharField(max_length=30, unique=True)
    computed_until = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name} until {self.computed_until:%Y-%m-%d %H:%M}"


class CostMinute(models.Model):
    """What one instance cost during one minute (UTC, aligned), prorated by seconds at its start and end.

    Provider, model and pool are copied from the instance when the row is written: history keeps the
    placement it had even if the catalog is edited later, and aggregates need no join.
    """

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField()
    # A plain UUID, not a foreign key: costs outlive the instances they describe.
    instance_id = models.UUIDField()
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    pool_id = models.CharField(max_length=64, null=True, blank=True)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)

    class Meta:
        ordering = ["minute", "instance_id"]
        constraints = [models.UniqueConstraint(fields=["minute", "instance_id"], name="costminute_unique")]
        # Windows of time (totals, series), then per dimension over a window.
        indexes = [
            models.Index(fields=["minute"], name="costminute_time", include=["amount"]),
            models.Index(fields=["model", "minute"], name="costminute_model_time", include=["amount"]),
            models.Index(fields=["pool_id", "minute"], name="costminute_pool_time", include=["amount"]),
            models.Index(fields=["instance_id", "minute"], name="costminute_instance_time", include=["amount"]),
        ]

    def __str__(self):
        return f"{self.instance_id} {self.minute:%Y-%m-%d %H:%M} {self.amount}"


class Budget(models.Model):
    """A monthly spending limit (EUR, calendar months in UTC) for one pool or one API key.

    `spent` is this month's spend as of `spent_at`, refreshed every minute by the cost task; it is what
    the router's over-budget check and the dashboard read, so neither recomputes a month of costs.
    """

    pool_id = models.CharField(max_length=64, null=True, blank=True)
    api_key = models.ForeignKey("router.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))], help_text="EUR per month"
    )
    spent = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, default=Decimal("0"))
    # The first day of the month `spent` belongs to; a budget not refreshed this month has spent nothing yet.
    spent_month = models.DateField(null=True, blank=True)
    spent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(pool_id__isnull=False) & Q(api_key__isnull=True))
                | (Q(pool_id__isnull=True) & Q(api_key__isnull=False)),
                name="budget_one_scope",
            ),
            models.UniqueConstraint(fields=["pool_id"], condition=Q(pool_id__isnull=False), name="budget_pool_unique"),
            models.UniqueConstraint(fields=["api_key"], condition=Q(api_key__isnull=False), name="budget_key_unique"),
        ]

    def __str__(self):
        return f"{self.scope_label}: {self.amount} EUR/month"

    @property
    def scope(self) -> str:
        return "pool" if self.pool_id is not None else "api_key"

    @property
    def scope_label(self) -> str:
        return f"pool {self.pool_id}" if self.pool_id is not None else f"API key {self.api_key_id}"

    @property
    def percent(self) -> Decimal:
        """How much of the amount `spent` is, in percent (of the month `spent_month` names)."""
        return calc.percent_of(self.spent, self.amount)


class BudgetAlert(models.Model):
    """A budget crossed a threshold (percent) in a month. Unique, so each is logged once per month."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "month", "threshold"], name="budgetalert_once_per_month")
        ]

    def __str__(self):
        return f"{self.budget} {self.threshold}% in {self.month:%Y-%m}"
