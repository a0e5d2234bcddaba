"""What the dashboard reads off monitoring rows."""

from monitoring.models import WorkerState

Worker = WorkerState.WorkerStatus


def test_each_worker_status_has_its_badge_colour():
    colours = {status: WorkerState(status=status).status_color for status in Worker.values}
    assert colours == {Worker.STARTING: "blue", Worker.READY: "green", Worker.DRAINING: "blue", Worker.ERROR: "red"}
    assert WorkerState(status="unheard-of").status_color == "gray"
