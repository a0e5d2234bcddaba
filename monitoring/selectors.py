"""Read queries over the action log: listings, timelines and the counts the Monitoring page shows.

Counting a large set exactly reads every row of it. From ESTIMATE_ABOVE rows on, PostgreSQL's own
statistics stand in for the count, and the answer says so: `pg_class.reltuples` and the `pg_stats`
frequencies for the whole table, the planner's row estimate (EXPLAIN, which reads nothing) for a broad
filter. A set the filters bound below that is counted exactly, from the covering indexes alone.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, QuerySet

from monitoring.models import ActionLog, ActionType

# Below this many rows an exact count is cheap enough (~20 ms from an index) to always be exact.
ESTIMATE_ABOVE = 100_000
STATUSES = tuple(ActionLog.Status.values)
# Deep offsets make PostgreSQL walk and drop every skipped row; past this, narrow the filters instead.
MAX_OFFSET = 100_000


def action_logs() -> QuerySet[ActionLog]:
    """All action logs, newest first, with the user loaded (the listings show the username)."""
    return ActionLog.objects.select_related("user")


def instance_timeline(instance_id) -> QuerySet[ActionLog]:
    """What happened to one instance, oldest first."""
    return ActionLog.objects.filter(instance_id=instance_id).select_related("user").order_by("created_at", "id")


def action_log_page(queryset: QuerySet[ActionLog], *, offset: int, limit: int) -> tuple[list[ActionLog], bool]:
    """One page of `queryset` with action types attached, and whether another page follows.

    One row more than shown says whether another page follows, without counting.
    """
    rows = with_action_types(queryset[offset:offset + limit + 1])
    return rows[:limit], len(rows) > limit and offset + limit <= MAX_OFFSET


def action_types_by_code() -> dict[str, ActionType]:
    return {action_type.code: action_type for action_type in ActionType.objects.all()}


def with_action_types(logs) -> list[ActionLog]:
    """The rows of `logs`, each with `type` set to its ActionType (label, icon, colour), or None if unknown."""
    types = action_types_by_code()
    logs = list(logs)
    for log in logs:
        log.type = types.get(log.action_type)
    return logs


def _table_estimate() -> int | None:
    """PostgreSQL's estimate of the table's row count, or None where there is none (SQLite, never analysed)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [ActionLog._meta.db_table])
        row = cursor.fetchone()
    # reltuples is -1 until the table is first vacuumed or analysed.
    return row[0] if row and row[0] >= 0 else None


def _status_frequencies() -> dict[str, float] | None:
    """The share of each status in the table, from the planner statistics, or None when not analysed.

    Statuses too rare to be in the most-common-values list share what the list leaves, as the planner
    itself assumes.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_vals::text::text[], most_common_freqs, null_frac FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s AND attname = 'status'",
            [ActionLog._meta.db_table],
        )
        row = cursor.fetchone()
    if not row:
        return None
    values, freqs, null_frac = row
    frequencies = dict(zip(values or [], freqs or [], strict=True))
    rare = [status for status in STATUSES if status not in frequencies]
    if rare:
        left = max(0.0, 1.0 - sum(frequencies.values()) - null_frac)
        frequencies.update(dict.fromkeys(rare, left / len(rare)))
    return frequencies


def count_by_status(queryset: QuerySet[ActionLog]) -> dict[str, int]:
    """Exact row counts per status of `queryset` (every status present, zero when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for row in queryset.order_by().values("status").annotate(rows=Count("*")):
        counts[row["status"]] = row["rows"]
    return counts


def _planned_rows(queryset: QuerySet[ActionLog]) -> int | None:
    """How many rows PostgreSQL's planner expects `queryset` to match (EXPLAIN, nothing read), or None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def _estimated_by_status(queryset: QuerySet[ActionLog], *, status: str | None) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    if status:
        # The planner multiplies selectivities: `status = a AND status = b` would not come out as zero.
        counts[status] = _planned_rows(queryset)
    else:
        for value in STATUSES:
            counts[value] = _planned_rows(queryset.filter(status=value))
    return counts


def total_count() -> tuple[int, bool]:
    """(rows in the action log, whether that is an estimate)."""
    estimate = _table_estimate()
    if estimate is not None and estimate >= ESTIMATE_ABOVE:
        return estimate, True
    return ActionLog.objects.count(), False


def count_rows(queryset: QuerySet[ActionLog], *, narrowed: bool) -> tuple[int, bool]:
    """(rows of `queryset`, whether that is an estimate). Unfiltered or broadly filtered large sets are estimated."""
    if not narrowed:
        return total_count()
    planned = _planned_rows(queryset)
    if planned is not None and planned >= ESTIMATE_ABOVE:
        return planned, True
    return queryset.order_by().count(), False


def action_log_stats(queryset: QuerySet[ActionLog], *, narrowed: bool, status: str | None = None) -> dict:
    """Counts for a listing: all rows, the rows `queryset` matches, and those per status.

    `narrowed` says whether any filter was applied (without one, the matching rows are the whole table);
    `status` is the status filter, if any. Sets the planner expects to hold ESTIMATE_ABOVE rows or more
    are estimated (and flagged) rather than counted.
    """
    total, total_estimated = total_count()
    if not narrowed and total_estimated:
        frequencies = _status_frequencies()
        if frequencies is not None:
            by_status = {value: round(total * frequencies.get(value, 0.0)) for value in STATUSES}
            return _stats(total, True, by_status, True)
    if narrowed:
        planned = _planned_rows(queryset)
        if planned is not None and planned >= ESTIMATE_ABOVE:
            return _stats(total, total_estimated, _estimated_by_status(queryset, status=status), True)
    by_status = count_by_status(queryset)
    if not narrowed:
        # The exact count of the whole table was just taken: no need for the estimate.
        total, total_estimated = sum(by_status.values()), False
    return _stats(total, total_estimated, by_status, False)


def _stats(total: int, total_estimated: bool, by_status: dict[str, int], filtered_estimated: bool) -> dict:
    return {
        "total": total, "total_estimated": total_estimated,
        "filtered": sum(by_status.values()), "filtered_estimated": filtered_estimated, "by_status": by_status,
    }
