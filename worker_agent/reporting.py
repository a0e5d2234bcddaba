"""The conversation with the control plane: register once, then heartbeat until stopped.

Failures never end it: every refused or unanswered call backs off (with jitter, capped) and tries
again, keeping the agent's state, and the normal interval resumes after the first success. A control plane
that answers with `Retry-After` (503 while its database is unreachable) is left alone at least that long.
"""

import logging
import time

from .agent import Agent
from .backoff import Backoff
from .control_plane import ControlPlaneClient, ControlPlaneError, NotRegistered, Unauthorized

logger = logging.getLogger(__name__)

RETRY_CAP_S = 30.0  # control-plane retries never wait longer than this


def _retry_delay(backoff: Backoff, exc: ControlPlaneError) -> float:
    return max(backoff.next_delay(), exc.retry_after or 0.0)


def _level(exc: ControlPlaneError) -> int:
    # A refused token needs a person; an unreachable control plane usually fixes itself.
    return logging.ERROR if isinstance(exc, Unauthorized) else logging.WARNING


async def register(agent: Agent, client: ControlPlaneClient, backoff: Backoff) -> None:
    while not agent.stopping:
        try:
            answer = await client.register(agent.register_payload())
        except ControlPlaneError as exc:
            delay = _retry_delay(backoff, exc)
            logger.log(_level(exc), "register failed: %s; retrying in %.1f s", exc, delay)
            await agent.sleep(delay)
            continue
        backoff.reset()
        agent.adopt_interval(answer)
        logger.info("registered as %s (heartbeat every %.1f s)", agent.config.instance_id, agent.heartbeat_interval_s)
        return


async def report_forever(agent: Agent, client: ControlPlaneClient) -> None:
    backoff = Backoff(agent.config.heartbeat_interval_s, RETRY_CAP_S, jitter=True)
    await register(agent, client, backoff)
    while not agent.stopping:
        await agent.refresh()
        try:
            answer = await client.heartbeat(agent.heartbeat_payload())
        except NotRegistered:
            logger.warning("control plane does not know this instance: registering again")
            await register(agent, client, backoff)
            continue
        except ControlPlaneError as exc:
            agent.heartbeat_failures += 1
            delay = _retry_delay(backoff, exc)
            logger.log(_level(exc), "heartbeat failed: %s; retrying in %.1f s", exc, delay)
            await agent.sleep(delay)
            continue
        if backoff.attempts:
            logger.info("control plane reachable again")
        backoff.reset()
        agent.last_heartbeat_at = time.monotonic()
        agent.obey(answer)
        if not agent.stopping:
            await agent.sleep(agent.heartbeat_interval_s)
