"""The engine supervisor, with small scripts standing in for vLLM."""

import asyncio
import sys

from worker_agent.backoff import Backoff
from worker_agent.supervisor import FAILURES_BEFORE_ERROR, LOG_TAIL_LINES, EngineSupervisor

FAST_BACKOFF_S = 0.01


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_it_restarts_a_failing_engine_and_reports_failing_with_its_last_lines():
    async def scenario() -> EngineSupervisor:
        supervisor = EngineSupervisor(python("print('boom key-42'); raise SystemExit(3)"),
                                      secrets=["key-42"], restart_backoff_s=FAST_BACKOFF_S)
        supervisor.start()
        await wait_until(lambda: supervisor.failing)
        await supervisor.stop()
        return supervisor

    supervisor = asyncio.run(scenario())
    assert supervisor.consecutive_failures >= FAILURES_BEFORE_ERROR
    assert supervisor.restarts >= FAILURES_BEFORE_ERROR - 1
    assert supervisor.last_exit == "engine exited with code 3"
    assert "boom ***" in supervisor.tail() and "[agent] engine exited with code 3" in supervisor.tail()


def test_it_keeps_only_the_last_200_lines():
    async def scenario() -> list[str]:
        supervisor = EngineSupervisor(python("for i in range(500): print(f'line {i}')"), restart_backoff_s=60)
        supervisor.start()
        await wait_until(lambda: supervisor.last_exit is not None)
        await supervisor.stop()
        return supervisor.tail()

    tail = asyncio.run(scenario())
    assert len(tail) == LOG_TAIL_LINES
    assert tail[-2] == "line 499" and tail[-1] == "[agent] engine exited with code 0"


def test_it_reports_an_engine_that_cannot_even_start():
    async def scenario() -> EngineSupervisor:
        supervisor = EngineSupervisor(["/nonexistent/vllm", "serve"], restart_backoff_s=FAST_BACKOFF_S)
        supervisor.start()
        await wait_until(lambda: supervisor.failing)
        await supervisor.stop()
        return supervisor

    assert "engine could not start" in asyncio.run(scenario()).last_exit


def test_it_kills_an_engine_that_ignores_sigterm_after_the_grace_period():
    ignore_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )

    async def scenario() -> int | None:
        supervisor = EngineSupervisor(python(ignore_term), stop_grace_s=0.3)
        supervisor.start()
        await wait_until(lambda: "up" in supervisor.tail())
        return await supervisor.stop()

    assert asyncio.run(scenario()) == -9


def test_its_failure_count_starts_again_once_the_engine_is_healthy():
    supervisor = EngineSupervisor(["true"])
    supervisor.consecutive_failures = FAILURES_BEFORE_ERROR
    supervisor.mark_healthy()
    assert not supervisor.failing


def test_backoff_doubles_up_to_its_cap_and_jitter_stays_within_half_to_full():
    backoff = Backoff(1.0, 8.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1
    jittered = Backoff(4.0, 30.0, jitter=True)
    assert 2.0 <= jittered.next_delay() <= 4.0
