"""The FinOps REST API: summary, spend, series, cost per million tokens, and budgets (CRUD)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from finops import calc, selectors
from finops.serializers import (
    BudgetSerializer,
    SeriesQuerySerializer,
    SeriesSerializer,
    SpendQuerySerializer,
    SpendSerializer,
    SummarySerializer,
    TokenCostsSerializer,
    WindowQuerySerializer,
)
from monitoring.audit import AuditedViewSetMixin

TAGS = ["finops"]


def parse_moment(raw: str, *, field: str, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date-time (UTC when it has no offset) or date (its midnight, or the next one for an end)."""
    raw = raw.strip()
    try:
        # A date first: Python reads "2026-05-31" as a date-time too, which would lose the whole-day end.
        day = parse_date(raw)
        if day is not None:
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end_of_day:
                moment += timedelta(days=1)
        else:
            moment = parse_datetime(raw)
        if moment is None:
            raise ValueError
        return moment.astimezone(UTC) if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValidationError({field: f"{raw!r} is not a valid ISO 8601 date (2026-05-31) or date-time "
                                      "(2026-05-31T12:00:00Z)"}) from None


def _query(serializer_class, request: Request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _window(raw: str) -> timedelta:
    try:
        return calc.parse_window(raw)
    except ValueError as exc:
        raise ValidationError({"window": str(exc)}) from None


@extend_schema(tags=TAGS, responses=SummarySerializer)
@api_view(["GET"])
def summary(request: Request) -> Response:
    """Burn rate now and its forecasts (next hour, day, 30 and 365 days); spend over the last hour, day,
    7 and 30 days, today and this month (UTC)."""
    return Response(SummarySerializer(selectors.spend_summary()).data)


@extend_schema(tags=TAGS, parameters=[SpendQuerySerializer], responses=SpendSerializer)
@api_view(["GET"])
def spend(request: Request) -> Response:
    """Actual spend between two moments (minute resolution), in total and per provider, model, pool or instance."""
    query = _query(SpendQuerySerializer, request)
    now = timezone.now()
    start = parse_moment(query["start"], field="start") if "start" in query else calc.month_start(now)
    end = parse_moment(query["end"], field="end", end_of_day=True) if "end" in query else now
    if end <= start:
        raise ValidationError({"end": "must be after start"})
    group_by = query.get("group_by")
    groups = selectors.spend_by(group_by, start=start, end=end) if group_by else []
    data = {"start": start, "end": end, "total": selectors.spend(start=start, end=end), "group_by": group_by,
            "groups": groups}
    return Response(SpendSerializer(data).data)


@extend_schema(tags=TAGS, parameters=[SeriesQuerySerializer], responses=SeriesSerializer)
@api_view(["GET"])
def series(request: Request) -> Response:
    """Spend per minute or per hour over a window ending now, one line per group (or the total)."""
    query = _query(SeriesQuerySerializer, request)
    window = _window(query["window"])
    bucket = query.get("bucket") or selectors.default_bucket(window)
    if bucket == "minute" and window > selectors.MAX_MINUTE_BUCKET_WINDOW:
        raise ValidationError({"bucket": "minute buckets cover at most 24h: use bucket=hour"})
    now = timezone.now()
    data = selectors.spend_series(start=now - window, end=now, bucket=bucket, group_by=query.get("group_by"))
    return Response(SeriesSerializer(data).data)


@extend_schema(tags=TAGS, parameters=[WindowQuerySerializer], responses=TokenCostsSerializer)
@api_view(["GET"])
def token_costs(request: Request) -> Response:
    """Cost per million tokens over a window ending now, per model and per API key, with the list-price view."""
    window = _window(_query(WindowQuerySerializer, request)["window"])
    now = timezone.now()
    return Response(TokenCostsSerializer(selectors.token_costs(start=now - window, end=now)).data)


@extend_schema(tags=TAGS)
class BudgetViewSet(AuditedViewSetMixin, viewsets.ModelViewSet):
    """Monthly budgets per pool or per API key. Crossing 80 % and 100 % writes a BUDGET_THRESHOLD action
    (once each per month); an API key at 100 % is refused by the router with a 429."""

    serializer_class = BudgetSerializer
    filter_backends = []
    audit_area = "BUDGET"

    def get_queryset(self):
        return selectors.budgets()


def register(router):
    router.register("finops/budgets", BudgetViewSet, basename="budget")
