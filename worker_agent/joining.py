"""The join of a host the operator runs: a one-time join token for the agent's own identity (PROTOCOL.md,
"Join").

On start, an agent given INVENTIV_JOIN_TOKEN first reads its state file (`worker.json` in
INVENTIV_AGENT_STATE_DIR): an agent that joined before keeps the instance id and worker token it got
there, and the join token (spent by then) is not used again. Otherwise it posts the join token, the model,
the engine port and the engine key to `/api/worker/join`, writes the answer to the state file (mode 0600,
written to a temporary file and renamed, so a crash leaves the old file or the new one, never half of one),
and goes on as any agent. The control plane being away is waited out (backoff with jitter, honouring
`Retry-After`); a token refused (wrong, spent, expired) or a body refused stops the agent, since asking
again cannot help. No token is ever logged: the caller's log filter masks the join token and the worker
token, and nothing here formats either.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from . import __version__
from .backoff import Backoff
from .config import AgentConfig
from .control_plane import MAX_RETRY_AFTER_S, REQUEST_TIMEOUT_S, retry_after_seconds

logger = logging.getLogger(__name__)

JOIN_PATH = "/api/worker/join"
STATE_FILE = "worker.json"
# Refusals that asking again cannot change: a bad body, a wrong token, a spent or expired one.
PERMANENT = (400, 401, 403)


class JoinFailed(Exception):
    """The join cannot succeed (the token was refused, or the state directory is unusable): the agent stops."""


class JoinRetry(Exception):
    """The join may succeed later (the control plane is away, or the host is still being attached)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, repr=False)
class Identity:
    instance_id: str
    worker_token: str

    def __repr__(self) -> str:
        return f"Identity({self.instance_id}, <token hidden>)"


def state_path(config: AgentConfig) -> Path:
    return Path(config.state_dir) / STATE_FILE


def read_identity(config: AgentConfig) -> Identity | None:
    """The identity an earlier join kept, or None when there is none. Raises JoinFailed on a file that
    exists but cannot be read (the operator must look: joining again would need a new join token)."""
    path = state_path(config)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise JoinFailed(f"{path} cannot be read ({type(exc).__name__}); remove it and register the host "
                         "again for a new join token") from None
    if not (isinstance(data, dict) and isinstance(data.get("instance_id"), str)
            and isinstance(data.get("worker_token"), str) and data["instance_id"] and data["worker_token"]):
        raise JoinFailed(f"{path} does not hold an instance id and a worker token")
    return Identity(data["instance_id"], data["worker_token"])


def write_identity(config: AgentConfig, identity: Identity) -> Path:
    """Keep the identity in the state file, readable by the agent's user only, replaced atomically."""
    directory = Path(config.state_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".worker-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise JoinFailed(f"INVENTIV_AGENT_STATE_DIR {directory} is not writable: {exc.strerror}") from None
    try:
        os.fchmod(descriptor, 0o600)  # mkstemp makes it 0600 already; said again, whatever the umask
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"instance_id": identity.instance_id, "worker_token": identity.worker_token}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, state_path(config))
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise JoinFailed(f"the state file in {directory} could not be written: {exc.strerror}") from None
    return state_path(config)


async def join_once(session: aiohttp.ClientSession, config: AgentConfig) -> Identity:
    """One join request. Raises JoinFailed (refused for good) or JoinRetry (ask again later)."""
    payload = {"join_token": config.join_token, "model": config.served_model_name,
               "engine_port": config.engine_port, "engine_api_key": config.engine_api_key}
    headers = {"User-Agent": f"inventiv-worker-agent/{__version__}"}
    try:
        async with session.post(config.control_plane_url + JOIN_PATH, json=payload, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as response:
            status, text = response.status, await response.text()
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JoinRetry(f"{JOIN_PATH}: {type(exc).__name__}: {exc}") from None
    answer = _json(text)
    if status in PERMANENT:
        reason = answer.get("error") if isinstance(answer.get("error"), str) else text[:200]
        fields = answer.get("fields")
        raise JoinFailed(f"the control plane refused the join ({status}): {reason}"
                         + (f" {json.dumps(fields)}" if fields else ""))
    if status != 200:
        raise JoinRetry(f"{JOIN_PATH}: HTTP {status} {text[:200]}", retry_after)
    instance_id, worker_token = answer.get("instance_id"), answer.get("worker_token")
    if not (isinstance(instance_id, str) and instance_id and isinstance(worker_token, str) and worker_token):
        raise JoinRetry(f"{JOIN_PATH}: the answer has no instance id and worker token")
    return Identity(instance_id, worker_token)


def _json(text: str) -> dict:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def joined(config: AgentConfig, *, backoff: Backoff | None = None) -> AgentConfig:
    """`config` with the agent's identity: the one kept in the state file, else one the join got (kept
    there at once). Asks again, without end, while the control plane cannot answer."""
    kept = read_identity(config)
    if kept is not None:
        logger.info("using the worker identity kept in %s (instance %s)", state_path(config), kept.instance_id)
        return config.with_identity(kept.instance_id, kept.worker_token)
    backoff = backoff or Backoff(1.0, 60.0, jitter=True)
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                identity = await join_once(session, config)
                break
            except JoinRetry as exc:
                delay = max(backoff.next_delay(), min(exc.retry_after or 0, MAX_RETRY_AFTER_S))
                logger.warning("join failed (%s); asking again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
    path = write_identity(config, identity)
    logger.info("joined the control plane as instance %s; worker token kept in %s", identity.instance_id, path)
    return config.with_identity(identity.instance_id, identity.worker_token)
