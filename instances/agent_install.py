"""What a machine's install script talks to: the worker agent archive it downloads, and the report of a step
that failed (the machine then fails with WORKER_INSTALL_FAILED and is terminated).

Both are worker endpoints (worker_api.py), authenticated with the instance's worker token.
"""

from __future__ import annotations

import io
import tarfile
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from instances.models import Instance
from instances.status import STARTUP, ErrorCode, Status
from instances.termination import fail_instance
from monitoring.heartbeats import PayloadInvalid
from providers.cloudinit import STEPS

MAX_STEP_MESSAGE = 2000
AGENT_PACKAGE = Path(settings.BASE_DIR) / "worker_agent"
# The agent's own tests and byte-code stay out of the archive a machine downloads.
ARCHIVE_SKIPPED = frozenset({"__pycache__", "tests"})


def validate_install_failure(payload) -> tuple[str, str]:
    """(step, message) of a cloud-init failure report; raises PayloadInvalid with every bad field."""
    if not isinstance(payload, dict):
        raise PayloadInvalid({"body": "must be a JSON object"})
    errors = {}
    step, message = payload.get("step"), payload.get("message") or ""
    if not isinstance(step, str) or step not in STEPS:
        errors["step"] = f"must be one of {', '.join(STEPS)}"
    if not isinstance(message, str) or len(message) > MAX_STEP_MESSAGE:
        errors["message"] = f"must be a string of at most {MAX_STEP_MESSAGE} characters"
    if errors:
        raise PayloadInvalid(errors)
    return step, message


def report_install_failure(instance: Instance, *, step: str, message: str = "") -> Instance:
    """The machine's install script failed at `step`: startup_failed WORKER_INSTALL_FAILED, then terminated.

    A report for an instance past its startup (a late or repeated one) changes nothing.
    """
    detail = f": {message}" if message else ""
    return fail_instance(
        instance, to=Status.STARTUP_FAILED, code=ErrorCode.WORKER_INSTALL_FAILED,
        action_type="INSTANCE_STARTUP_FAILED", allowed_from=STARTUP,
        message=f"The worker install failed at step {step}{detail}.", metadata={"step": step},
    )


@lru_cache(maxsize=1)
def agent_archive() -> bytes:
    """A tar.gz of the worker_agent package (its requirements.txt included), as cloud-init unpacks it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(AGENT_PACKAGE.rglob("*")):
            relative = path.relative_to(AGENT_PACKAGE.parent)
            if not path.is_file() or ARCHIVE_SKIPPED.intersection(relative.parts) or path.suffix == ".pyc":
                continue
            info = archive.gettarinfo(str(path), arcname=str(relative))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()
