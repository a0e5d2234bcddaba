"""A vLLM-protocol simulator: vLLM's HTTP surface with configurable latency and concurrency.

`python -m worker_agent.simulator --model NAME --port P ...` runs it as a process (as the Mock cloud
does); `create_app(config)` and `start_simulator(config)` run it inside a test or a benchmark.
"""

from typing import Any

from .config import SIM_VERSION, SimConfig

__all__ = ["SIM_VERSION", "AppThread", "SimConfig", "create_app", "start_simulator"]

# The agent imports this package for SIM_VERSION alone: load the server parts only when asked for,
# so that they cost the agent no memory.
_LAZY = {"create_app": ".app", "AppThread": ".inprocess", "start_simulator": ".inprocess"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
