"""scripts/run.sh (what `make run` starts) keeps web, worker and beat up, and Ctrl-C stops all of them.

Stand-ins take the place of `celery` and `uvicorn`: each records when it starts and stops; the first worker
exits at once, as a worker that lost its broker for good would.
"""

import os
import signal
import subprocess
from pathlib import Path

from django.conf import settings

from inventiv.tests.own_servers import wait_until

STARTED_WITHIN_S = 20
STOPPED_WITHIN_S = 20

STAND_IN = """#!/usr/bin/env bash
role=web
[ "$1" = -A ] && role=$3   # celery -A inventiv worker|beat ...
echo "start $role $$" >> "$STAND_IN_LOG"
if [ "$role" = worker ] && [ ! -e "$STAND_IN_LOG.crashed" ]; then
  touch "$STAND_IN_LOG.crashed"
  exit 3
fi
trap 'echo "stop $role $$" >> "$STAND_IN_LOG"; exit 0' TERM
while true; do sleep 0.1; done
"""


def events(log: Path) -> list[tuple[str, str, int]]:
    if not log.exists():
        return []
    return [(event, role, int(pid)) for event, role, pid in (line.split() for line in log.read_text().splitlines())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_everything(run: subprocess.Popen, log: Path) -> None:
    """After a failure: whatever the script or its children left running."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)  # the script and its supervising subshells
        run.wait()
    for _, _, pid in events(log):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_run_sh_restarts_a_child_that_exits_and_ctrl_c_stops_every_child(tmp_path):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("celery", "uvicorn"):
        (venv_bin / name).write_text(STAND_IN)
        (venv_bin / name).chmod(0o755)
    log, stderr = tmp_path / "children.log", tmp_path / "run.stderr"
    env = {**os.environ, "VENV": str(tmp_path / "venv"), "STAND_IN_LOG": str(log), "RESTART_FIRST_S": "1"}

    with open(stderr, "wb") as errors:
        run = subprocess.Popen([str(settings.BASE_DIR / "scripts" / "run.sh")], env=env, stdout=subprocess.DEVNULL,
                               stderr=errors, start_new_session=True)
    try:
        def started(role: str) -> list[int]:
            return [pid for event, name, pid in events(log) if event == "start" and name == role]

        wait_until(lambda: len(started("worker")) == 2 and started("beat") and started("web"),
                   timeout=STARTED_WITHIN_S, what="the worker to be started again, beside beat and web")
        assert "run.sh: worker exited with status 3; starting it again in 1s" in stderr.read_text()
        assert run.poll() is None  # one child exiting stops nothing else

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the script's whole process group
        run.wait(timeout=STOPPED_WITHIN_S)

        children = {pid for event, _, pid in events(log) if event == "start"}
        assert {pid for event, _, pid in events(log) if event == "stop"} == children - {started("worker")[0]}
        assert not [pid for pid in children if alive(pid)]
        assert len(started("worker")) == 2  # nothing was started again after Ctrl-C
    except BaseException:
        _stop_everything(run, log)  # leave nothing running behind a failure
        raise
