"""Usage recording off the request path: traces go to an in-memory buffer; a background task writes
them with one bulk insert every second (sooner once `batch_size` are waiting) and moves each key's
`last_used_at`. A failed write keeps the records for the next try; shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime

from django.db import connection, transaction

from router.models import ApiKey, RequestTrace

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
FLUSH_BATCH = 500
# While the database is away, records pile up to this many; the oldest are dropped after that (logged)
# rather than letting the router run out of memory.
MAX_BUFFERED = 200_000


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


TRACE_COLUMNS = tuple(field.name for field in fields(TraceRecord))
_row_of = operator.attrgetter(*TRACE_COLUMNS)
_CREATED_AT, _INSTANCE_ID = TRACE_COLUMNS.index("created_at"), TRACE_COLUMNS.index("instance_id")


def write_traces(records: list[TraceRecord]) -> None:
    """One transaction: the trace rows, and each key's last use (synchronous: run it off the loop)."""
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.api_key_id is not None:
            seen = last_used.get(record.api_key_id)
            if seen is None or record.created_at > seen:
                last_used[record.api_key_id] = record.created_at
    with transaction.atomic():
        _insert_traces(records)
        for key_id, used_at in last_used.items():
            ApiKey.objects.filter(pk=key_id).update(last_used_at=used_at)


def _insert_traces(records: list[TraceRecord]) -> None:
    """One INSERT run with executemany. bulk_create builds a model instance and prepares every value of
    every row in Python; at a few thousand traces a second that took a quarter of the router's CPU
    (bench/router.py under py-spy), on the thread that shares the interpreter lock with the event loop.
    Only two values need the database's form: the aware time, and the instance UUID (text on SQLite)."""
    meta = RequestTrace._meta
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(meta.db_table), ", ".join(quote(meta.get_field(name).column) for name in TRACE_COLUMNS),
        ", ".join(["%s"] * len(TRACE_COLUMNS)),
    )
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
        self._buffer: list[TraceRecord] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped = 0
        self.written = 0

    def record(self, record: TraceRecord) -> None:
        """The request path's only call: an append (and a wake-up once a batch is ready)."""
        self._buffer.append(record)
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
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            try:
                await self._run_sync(write_traces, batch)
            except Exception:
                log.exception("writing %d request traces failed; keeping them for the next flush", len(batch))
                self._buffer[:0] = batch
                overflow = len(self._buffer) - self.max_buffered
                if overflow > 0:
                    del self._buffer[:overflow]
                    self.dropped += overflow
                    log.error("dropped the %d oldest request traces: the buffer is full", overflow)
            else:
                self.written += len(batch)
