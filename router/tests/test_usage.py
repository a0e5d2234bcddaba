"""Traces: the batch writer, and the counters the dashboard reads."""

import asyncio
import logging
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from router.models import ApiKey, RequestTrace
from router.selectors import instance_usage, model_usage, request_traces
from router.services import create_api_key
from router.tests.factories import MODEL, WAIT_TIMEOUT_S, client_key, wait_for
from router.usage import INTEGER_MAX, SMALLINT_MAX, TraceRecord, UsageRecorder, write_traces, write_traces_dropping_refused

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


# --- Trace writing never blocks ----------------------------------------------------------------------------

LONG_NAME = "m" * 10_000  # a client's model name: the column holds 200 characters


def test_every_field_is_bounded_before_it_is_buffered_and_the_row_is_accepted(seed):
    recorder = UsageRecorder(run_sync=None)
    recorder.record(record(model=LONG_NAME + "\x00", tokens=(10**12, -3), status=70_000,
                           error_message="e" * 100_000, route_reason="r" * 99))

    write_traces(list(recorder._buffer))  # what the next flush writes

    trace = RequestTrace.objects.get()
    assert trace.model == "m" * 200 and len(trace.error_message) == 2_000 and len(trace.route_reason) == 30
    assert (trace.prompt_tokens, trace.completion_tokens, trace.status_code) == (INTEGER_MAX, 0, SMALLINT_MAX)


def test_a_row_the_database_refuses_is_dropped_and_the_rest_of_its_batch_is_written(seed):
    batch = [record() for _ in range(6)]
    batch[3].instance_id = "not-a-uuid"  # past the bounds: the database (its UUID column) refuses it

    refused = write_traces_dropping_refused(batch)

    assert [row for row, _ in refused] == [batch[3]]
    assert RequestTrace.objects.count() == 5


def test_the_recorder_logs_refused_rows_in_one_line_and_writes_on(caplog):
    async def database_refusing_the_first(function, batch):
        return [(batch[0], "DataError: value too long for type character varying(200)")]

    async def scenario():
        recorder = UsageRecorder(run_sync=database_refusing_the_first)
        for _ in range(4):
            recorder.record(record())
        with caplog.at_level(logging.ERROR, logger="router.usage"):
            await recorder.flush()
        return recorder

    recorder = asyncio.run(scenario())
    assert (recorder.written, recorder.refused, recorder.pending) == (3, 1, 0)
    assert [line.getMessage()[:40] for line in caplog.records] == ["the database refused 1 request trace(s),"]


def test_splitting_finds_every_refused_row(monkeypatch):
    def refuse_odd_models(records):
        if any(int(row.model) % 2 for row in records):
            raise ValueError("refused")

    monkeypatch.setattr("router.usage.write_traces", refuse_odd_models)

    refused = write_traces_dropping_refused([record(model=str(n)) for n in range(8)])

    assert [row.model for row, _ in refused] == ["1", "3", "5", "7"]


@pytest.mark.django_db(transaction=True)
def test_after_a_poison_request_the_next_valid_requests_are_traced_within_5_s(engines, start_router):
    engines()
    key = client_key()
    router = start_router()

    def chat(model):
        return requests.post(f"{router.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                             timeout=WAIT_TIMEOUT_S)

    assert chat(LONG_NAME).status_code == 404
    assert [chat(MODEL).status_code for _ in range(3)] == [200, 200, 200]

    wait_for(lambda: RequestTrace.objects.filter(model=MODEL, status_code=200).count() == 3, timeout=5,
             what="the valid requests' traces")
    assert RequestTrace.objects.get(status_code=404).model == "m" * 200


def test_traces_of_a_key_deleted_before_the_flush_are_written_without_a_key(seed):
    kept, _ = create_api_key(name="kept")
    gone, _ = create_api_key(name="gone")
    batch = [record(key=kept.pk), record(key=gone.pk)]
    gone.delete()

    write_traces(batch)

    assert sorted(RequestTrace.objects.values_list("api_key_id", flat=True), key=str) == sorted([kept.pk, None], key=str)
    kept.refresh_from_db()
    assert kept.last_used_at is not None


def test_deleting_a_key_leaves_no_trace_naming_it(seed):
    key, _ = create_api_key(name="short-lived")
    write_traces([record(key=key.pk)])

    key.delete()

    assert list(RequestTrace.objects.values_list("api_key_id", flat=True)) == [None]
