"""Traces: the batch writer, and the counters the dashboard reads."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from router.models import ApiKey, RequestTrace
from router.selectors import instance_usage, model_usage, request_traces
from router.services import create_api_key
from router.tests.factories import WAIT_TIMEOUT_S
from router.usage import TraceRecord, UsageRecorder, write_traces

pytestmark = pytest.mark.django_db

INSTANCE = "0b0e7f4c-3a9e-4b1e-9d6c-7a1d2c3b4a59"


def record(*, key=None, model="mock-echo", outcome="ok", status=200, tokens=(2, 3), at=None, **fields):
    return TraceRecord(api_key_id=key, endpoint="chat/completions", model=model, status_code=status,
                       outcome=outcome, created_at=at or timezone.now(), latency_ms=12.5,
                       prompt_tokens=tokens[0], completion_tokens=tokens[1], **fields)


def test_a_batch_is_written_at_once_and_moves_each_keys_last_use(seed):
    api_key, _ = create_api_key(name="ci")
    later = timezone.now() + timedelta(seconds=5)
    write_traces([record(key=api_key.pk), record(key=api_key.pk, at=later), record()])
    assert RequestTrace.objects.count() == 3
    assert ApiKey.objects.get().last_used_at == later


def test_records_are_kept_when_a_write_fails_and_written_on_the_next_flush():
    attempts = []

    async def flaky(function, batch):
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise RuntimeError("database away")

    async def scenario():
        recorder = UsageRecorder(run_sync=flaky)
        recorder.record(record())
        await recorder.flush()
        recorder.record(record())
        await recorder.flush()
        return recorder

    recorder = asyncio.run(scenario())
    assert attempts == [1, 2] and recorder.pending == 0 and recorder.written == 2


def test_the_buffer_drops_the_oldest_records_past_its_cap():
    async def down(function, batch):
        raise RuntimeError("database away")

    async def scenario():
        recorder = UsageRecorder(run_sync=down, max_buffered=3)
        for _ in range(5):
            recorder.record(record())
        await recorder.flush()
        return recorder

    recorder = asyncio.run(scenario())
    assert (recorder.pending, recorder.dropped) == (3, 2)


def test_usage_is_counted_per_model_and_per_instance(seed):
    write_traces([
        record(instance_id=INSTANCE), record(instance_id=INSTANCE, tokens=(1, 1)),
        record(outcome="upstream_error", status=502, tokens=(None, None)),
        record(model="other", outcome="no_instance", status=503, tokens=(None, None)),
    ])
    by_model = {row["model"]: row for row in model_usage()}
    assert (by_model["mock-echo"]["requests"], by_model["mock-echo"]["errors"]) == (3, 1)
    assert (by_model["mock-echo"]["prompt_tokens"], by_model["mock-echo"]["completion_tokens"]) == (3, 4)
    assert [(str(row["instance_id"]), row["requests"]) for row in instance_usage()] == [(INSTANCE, 2)]
    assert request_traces(status_code=503).get().model == "other"


def test_the_traces_api_lists_and_filters(seed, api):
    write_traces([record(), record(outcome="rate_limited", status=429, tokens=(None, None))])
    rows = api.get("/api/request-traces/", {"status_code": 429}).json()["results"]
    assert [(row["status_code"], row["outcome"]) for row in rows] == [(429, "rate_limited")]


def test_closing_while_a_write_waits_for_the_database_loses_nothing():
    written = []

    async def scenario():
        write_started, database_free = asyncio.Event(), asyncio.Event()

        async def busy_database(function, batch):
            write_started.set()
            await database_free.wait()  # the database thread is busy with something else first
            written.extend(batch)

        recorder = UsageRecorder(run_sync=busy_database, flush_interval_s=0.01)
        task = asyncio.create_task(recorder.run())
        recorder.record(record())
        await asyncio.wait_for(write_started.wait(), WAIT_TIMEOUT_S)  # the loop took the record and waits on the write
        recorder.record(record())
        recorder.close()
        database_free.set()
        await asyncio.wait_for(task, WAIT_TIMEOUT_S)
        await recorder.flush()

    asyncio.run(scenario())
    assert len(written) == 2
