from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers

from finops import calc
from finops.models import Budget
from finops.selectors import GROUPS
from router.models import ApiKey

MONEY = {"max_digits": 20, "decimal_places": 6}
GROUP_CHOICES = sorted(GROUPS)


def money_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(**MONEY, read_only=True, **kwargs)


# --- Query parameters -----------------------------------------------------------------------


class SpendQuerySerializer(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="ISO 8601 date or date-time (UTC if no offset); "
                                  "default: the first of this month")
    end = serializers.CharField(required=False, help_text="ISO 8601 date (that whole day included) or date-time "
                                "(excluded); default: now")
    group_by = serializers.ChoiceField(choices=GROUP_CHOICES, required=False)


class SeriesQuerySerializer(serializers.Serializer):
    window = serializers.CharField(required=False, default="24h", help_text="How far back: 90m, 24h, 7d (at most 366d)")
    bucket = serializers.ChoiceField(choices=["minute", "hour"], required=False,
                                     help_text="Default: minute up to 6h, hour beyond; minute at most for 24h")
    group_by = serializers.ChoiceField(choices=GROUP_CHOICES, required=False)


class WindowQuerySerializer(serializers.Serializer):
    window = serializers.CharField(required=False, default="24h", help_text="How far back: 90m, 24h, 7d (at most 366d)")


# --- Answers --------------------------------------------------------------------------------


class ForecastSerializer(serializers.Serializer):
    next_hour = money_field()
    next_day = money_field()
    next_30_days = money_field()
    next_365_days = money_field()


class SpendWindowsSerializer(serializers.Serializer):
    last_hour = money_field()
    last_day = money_field()
    last_7_days = money_field()
    last_30_days = money_field()


class SummarySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    burn_rate_per_hour = money_field(help_text="EUR per hour of every billable instance now")
    forecasts = ForecastSerializer(help_text="The current burn rate over each horizon")
    spend = SpendWindowsSerializer(help_text="Actual spend over the last hour, day, 7 and 30 days")
    today = money_field(help_text="Since midnight UTC")
    this_month = money_field(help_text="Since the first of the month, UTC")


class GroupAmountSerializer(serializers.Serializer):
    key = serializers.CharField()
    amount = money_field()


class SpendSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total = money_field()
    group_by = serializers.CharField(allow_null=True)
    groups = GroupAmountSerializer(many=True)


class SeriesLineSerializer(serializers.Serializer):
    key = serializers.CharField()
    total = money_field()
    amounts = serializers.ListField(child=money_field())


class SeriesSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket = serializers.CharField()
    group_by = serializers.CharField(allow_null=True)
    buckets = serializers.ListField(child=serializers.DateTimeField(), help_text="Start of each bucket")
    series = SeriesLineSerializer(many=True, help_text="One line per group (the smaller ones summed as `(other)`)")


class ModelTokenCostSerializer(serializers.Serializer):
    model = serializers.CharField()
    cost = money_field(help_text="GPU cost of the model's instances over the window, idle time included")
    tokens = serializers.IntegerField(help_text="Prompt + completion tokens served")
    cost_per_million = money_field(allow_null=True)
    hourly_price = money_field(help_text="EUR per hour of the model's billable instances now")
    tokens_per_hour = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True)
    list_price_per_million = money_field(allow_null=True, help_text="hourly_price / tokens_per_hour x 1e6")


class KeyTokenCostSerializer(serializers.Serializer):
    api_key = serializers.IntegerField()
    name = serializers.CharField()
    cost = money_field(help_text="Each model's cost split by this key's share of its tokens")
    tokens = serializers.IntegerField()
    cost_per_million = money_field(allow_null=True)


class TokenCostsSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    models = ModelTokenCostSerializer(many=True)
    api_keys = KeyTokenCostSerializer(many=True)


class BudgetSerializer(serializers.ModelSerializer):
    """A monthly budget for exactly one pool (`pool`) or one API key (`api_key`)."""

    pool = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$", source="pool_id", required=False, allow_null=True,
                                  help_text="The pool's id, as instances record it")
    api_key = serializers.PrimaryKeyRelatedField(queryset=ApiKey.objects.all(), required=False, allow_null=True)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"),
                                      help_text="EUR per calendar month (UTC)")
    scope = serializers.CharField(read_only=True)
    spent_this_month = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = ["id", "scope", "pool", "api_key", "amount", "spent_this_month", "percent", "spent_at",
                  "created_at", "updated_at"]
        read_only_fields = ["spent_at", "created_at", "updated_at"]
        # Uniqueness per pool and per key is checked in validate(), with a message that names the field.
        validators = []

    def _spent(self, budget: Budget) -> Decimal:
        return budget.spent if budget.spent_month == calc.month_of(timezone.now()) else Decimal(0)

    def get_spent_this_month(self, budget: Budget) -> str:
        return str(calc.money(self._spent(budget)))

    def get_percent(self, budget: Budget) -> float:
        return float(calc.percent_of(self._spent(budget), budget.amount))

    def validate(self, attrs):
        pool_id = attrs.get("pool_id", getattr(self.instance, "pool_id", None))
        api_key = attrs.get("api_key", getattr(self.instance, "api_key", None))
        if (pool_id is None) == (api_key is None):
            raise serializers.ValidationError({"pool": "Give exactly one of pool and api_key."})
        others = Budget.objects.exclude(pk=getattr(self.instance, "pk", None))
        if pool_id is not None and others.filter(pool_id=pool_id).exists():
            raise serializers.ValidationError({"pool": f"Pool {pool_id} already has a budget."})
        if api_key is not None and others.filter(api_key=api_key).exists():
            raise serializers.ValidationError({"api_key": f"API key {api_key.pk} already has a budget."})
        return attrs
