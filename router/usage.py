"""Usage recording off the request path: traces go to an in-memory buffer; a background task writes
them with one bulk insert every second (sooner once `batch_size` are waiting) and moves each key's
`last_used_at`; shutdown flushes what is left.

Trace writing never blocks. Every field is bounded before it is buffered (texts cut to their column, NUL
removed, counts clamped), so what a client sends (a 10,000-character model name) cannot make a row the
database refuses. Should one be refused all the same, the batch is split until the bad rows are found:
they are dropped with one log line and the others written. Only a database that cannot be reached keeps
the batch for the next flush. The buffer holds at most `max_buffered` records; past that the oldest go.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, transaction

from router.models import ApiKey, RequestTrace

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
# A flush comes sooner once this many are waiting. A flush costs the router ~0.7 ms of CPU whatever its
# size (its transaction, the keys' update, the COPY's statement), PostgreSQL more: with 500 a flush, writing
# cost the router ~3.9 us a trace, with 5,000 ~1.5-1.8 us (5,000 traces: a few MB, one ~50 ms COPY).
FLUSH_BATCH = 5000
# While the database is away, records pile up to this many; the oldest are dropped after that (logged)
# rather than letting the router run out of memory. Bounded fields keep a record under ~3 KB.
MAX_BUFFERED = 100_000
# A trace keeps the start of an error message: it says what went wrong, the engine's log says the rest.
MAX_ERROR_MESSAGE = 2_000
# Column ranges (PostgreSQL's smallint and integer; positive fields).
SMALLINT_MAX = 32_767
INTEGER_MAX = 2_147_483_647
# The database is away (keep the batch); any other error is a row it refuses (split the batch, drop it).
UNREACHABLE = (OperationalError, InterfaceError)


@dataclass(slots=True)
class TraceRecord:
    api_key_id: int | None
    endpoint: str
    model: str
    status_code: int
    outcome: str
    created_at: datetime
    latency_ms: float
    instance_id: str | None = None
    error_message: str = ""
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    retries: int = 0
    route_reason: str = ""
    held_ms: float | None = None


def in_one_line(exc: BaseException) -> str:
    """An error as one log line: its type and its message's first line (a driver's goes on for several)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


TEXT_LIMITS = {
    **{name: RequestTrace._meta.get_field(name).max_length for name in ("endpoint", "model", "outcome", "route_reason")},
    "error_message": MAX_ERROR_MESSAGE,
}
COUNT_LIMITS = {"status_code": SMALLINT_MAX, "retries": SMALLINT_MAX, "prompt_tokens": INTEGER_MAX,
                "completion_tokens": INTEGER_MAX}


def bound(record: TraceRecord) -> TraceRecord:
    """Make every field of `record` fit its column, in place (the request path: cheap when all fit)."""
    for name, limit in TEXT_LIMITS.items():
        text = getattr(record, name)
        if not isinstance(text, str) or len(text) > limit or "\x00" in text:
            setattr(record, name, str(text or "").replace("\x00", "")[:limit])
    for name, limit in COUNT_LIMITS.items():
        count = getattr(record, name)
        if count is not None and not 0 <= count <= limit:
            setattr(record, name, min(max(int(count), 0), limit))
    return record


TRACE_COLUMNS = tuple(field.name for field in fields(TraceRecord))
_row_of = operator.attrgetter(*TRACE_COLUMNS)
_CREATED_AT, _INSTANCE_ID = TRACE_COLUMNS.index("created_at"), TRACE_COLUMNS.index("instance_id")
# Each column's PostgreSQL type, for the binary COPY (its values are sent as that type's binary form).
_BINARY_TYPE_OF = {"ForeignKey": "int8", "CharField": "text", "TextField": "text", "PositiveSmallIntegerField": "int2",
                   "PositiveIntegerField": "int4", "FloatField": "float8", "BooleanField": "bool",
                   "DateTimeField": "timestamptz", "UUIDField": "uuid"}
_BINARY_TYPES = [_BINARY_TYPE_OF[RequestTrace._meta.get_field(name).get_internal_type()] for name in TRACE_COLUMNS]


def write_traces(records: list[TraceRecord]) -> None:
    """One transaction: each key's last use, then the trace rows (synchronous: run it off the loop).

    The traces' key column has no database constraint (router/models.py): a key deleted since its
    requests were answered is found here, by its update touching no row (the update waits for a deletion
    in progress), and its traces are written without a key, as deleting it leaves the traces written
    before (router/signals.py nulls those, after the key's row is gone)."""
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.api_key_id is not None:
            seen = last_used.get(record.api_key_id)
            if seen is None or record.created_at > seen:
                last_used[record.api_key_id] = record.created_at
    with transaction.atomic():
        gone = {key_id for key_id, used_at in last_used.items()
                if not ApiKey.objects.filter(pk=key_id).update(last_used_at=used_at)}
        if gone:
            for record in records:
                if record.api_key_id in gone:
                    record.api_key_id = None
        _insert_traces(records)


def write_traces_dropping_refused(records: list[TraceRecord]) -> list[tuple[TraceRecord, str]]:
    """Write `records`; when the database refuses the batch, split it until the refused rows are alone, and
    return them with why (the others are written). Raises only when the database cannot be reached."""
    try:
        write_traces(records)
        return []
    except UNREACHABLE:
        raise
    except Exception as exc:  # noqa: BLE001 - a row the database refuses, whatever the driver calls it
        if len(records) == 1:
            return [(records[0], f"{type(exc).__name__}: {exc}")]
    middle = len(records) // 2
    return write_traces_dropping_refused(records[:middle]) + write_traces_dropping_refused(records[middle:])


def _insert_traces(records: list[TraceRecord]) -> None:
    """The rows, by binary COPY on PostgreSQL, else by one INSERT run with executemany.

    bulk_create builds a model instance and prepares every value of every row in Python; at a few thousand
    traces a second that took a quarter of the router's CPU (bench/router.py under py-spy), on the thread
    that shares the interpreter lock with the event loop. An INSERT per row still cost the router ~10 us and
    PostgreSQL ~25 us of CPU per trace, on the machines that serve the requests; a text COPY ~4 us and
    ~12 us; a binary COPY (each value sent in its column's own binary form, nothing to format or parse)
    ~1 us and ~8 us. A row COPY refuses (or a value that cannot take its column's form) fails its whole
    batch, which write_traces_dropping_refused splits as it splits an INSERT's."""
    meta = RequestTrace._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(quote(meta.get_field(name).column) for name in TRACE_COLUMNS)
    if connection.vendor == "postgresql":
        uuids: dict[str, uuid.UUID] = {}  # a batch names few instances: convert each once
        # A COPY is psycopg's own, not run through Django's cursor methods: wrapped here, so that the database
        # going away mid-COPY reads as Django's OperationalError (the batch is kept, the connection replaced)
        # and not as a refused row (dropped).
        with connection.wrap_database_errors, connection.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_BINARY_TYPES)
            write_row = copy.write_row
            for record in records:
                row = _row_of(record)
                instance_id = row[_INSTANCE_ID]
                if instance_id is not None:
                    found = uuids.get(instance_id)
                    if found is None:
                        found = uuids[instance_id] = uuid.UUID(instance_id)
                    row = (*row[:_INSTANCE_ID], found, *row[_INSTANCE_ID + 1:])
                write_row(row)
        return
    sql = "INSERT INTO {} ({}) VALUES ({})".format(table, columns, ", ".join(["%s"] * len(TRACE_COLUMNS)))
    # Only two values need the database's form: the aware time, and the instance UUID (text on SQLite).
    adapt_time = connection.ops.adapt_datetimefield_value
    instance_field = meta.get_field("instance_id")
    instance_ids: dict[str, object] = {}  # a batch names few instances: convert each once
    rows = []
    for record in records:
        row = list(_row_of(record))
        row[_CREATED_AT] = adapt_time(row[_CREATED_AT])
        instance_id = row[_INSTANCE_ID]
        if instance_id is not None:
            if instance_id not in instance_ids:
                instance_ids[instance_id] = instance_field.get_db_prep_value(instance_id, connection)
            row[_INSTANCE_ID] = instance_ids[instance_id]
        rows.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


class UsageRecorder:
    def __init__(self, *, run_sync: Callable[..., Awaitable], flush_interval_s: float = FLUSH_INTERVAL_S,
                 batch_size: int = FLUSH_BATCH, max_buffered: int = MAX_BUFFERED) -> None:
        self._run_sync = run_sync
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self._buffer: deque[TraceRecord] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped = 0  # the oldest, while the buffer was full
        self.refused = 0  # rows the database would not take
        self.written = 0
        self._dropped_unlogged = 0

    def record(self, record: TraceRecord) -> None:
        """The request path's only call: bound the fields, append (the oldest goes when the buffer is full)
        and wake the writer once a batch is ready."""
        if len(self._buffer) >= self.max_buffered:
            self._buffer.popleft()
            self.dropped += 1
            self._dropped_unlogged += 1
        self._buffer.append(bound(record))
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Flush every interval (or on a full batch) until `close()`. Never cancel it: a write cancelled
        while it waits for the database thread would be dropped with its records."""
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    def close(self) -> None:
        """Ask `run()` to return after its current flush; the owner then awaits it and flushes the rest."""
        self._stopping = True
        self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            if self._dropped_unlogged:
                log.error("dropped the %d oldest request traces: the buffer is full", self._dropped_unlogged)
                self._dropped_unlogged = 0
            if not self._buffer:
                return
            batch, self._buffer = list(self._buffer), deque()
            try:
                refused = await self._run_sync(write_traces_dropping_refused, batch)
            except Exception as exc:  # the database cannot be reached: keep the batch (one line, no traceback)
                log.warning("writing %d request traces failed (%s); keeping them for the next flush", len(batch),
                            in_one_line(exc))
                kept = batch + list(self._buffer)
                overflow = len(kept) - self.max_buffered
                if overflow > 0:
                    del kept[:overflow]
                    self.dropped += overflow
                    log.error("dropped the %d oldest request traces: the buffer is full", overflow)
                self._buffer = deque(kept)
            else:
                refused = refused or []
                if refused:
                    self.refused += len(refused)
                    log.error("the database refused %d request trace(s), dropped (first: model %.60r, %s); wrote "
                              "the %d others", len(refused), refused[0][0].model, refused[0][1][:300],
                              len(batch) - len(refused))
                self.written += len(batch) - len(refused)
