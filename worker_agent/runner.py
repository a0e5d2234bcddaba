"""One run of the agent process: open the HTTP session, serve, start the engine, report until told to stop,
then stop everything in the reverse order."""

import asyncio
import logging
import signal

import aiohttp

from . import __version__
from .agent import Agent
from .control_plane import ControlPlaneClient
from .engine_client import EngineClient
from .engine_command import printable
from .memory import release_freed_memory
from .reporting import report_forever
from .server import start_server

logger = logging.getLogger(__name__)


async def run_agent(agent: Agent) -> int:
    """Serve, supervise and report until told to stop (SIGTERM, SIGINT, a `shutdown` answer); returns the
    process exit code."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.request_stop)
    config = agent.config
    session = aiohttp.ClientSession()
    agent.engine = EngineClient(
        session, config.engine_url, api_key=config.engine_api_key, model=config.served_model_name
    )
    control_plane = ControlPlaneClient(session, config.control_plane_url, worker_token=config.worker_token)
    runner = await start_server(agent)
    release_freed_memory()  # everything is imported and initialised by now
    logger.info(
        "agent %s for instance %s: engine mode %s, model %s, listening on %s:%d",
        __version__, config.instance_id, config.engine_mode, config.served_model_name,
        config.agent_host, config.agent_port,
    )
    supervisor = agent.supervisor
    if supervisor is not None:
        logger.info("starting engine: %s", printable(supervisor.argv))
        supervisor.start()
    control = asyncio.create_task(report_forever(agent, control_plane), name="control-loop")
    await agent.wait_for_stop()
    logger.info("shutting down")
    control.cancel()
    await asyncio.gather(control, return_exceptions=True)
    if supervisor is not None:
        code = await supervisor.stop()
        logger.info("engine stopped (exit code %s)", code)
    await runner.cleanup()
    await session.close()
    agent.gpu.close()
    return 0
