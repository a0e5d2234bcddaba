"""The command line and environment the supervisor starts the engine with, per engine mode."""

import importlib.metadata
import os
import sys
from pathlib import Path

from .config import AgentConfig
from .redact import MASK
from .simulator.config import SIM_VERSION

# The directory that holds the `worker_agent` package, so `python -m worker_agent.simulator` works
# wherever the agent was started from.
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def engine_command(config: AgentConfig) -> list[str] | None:
    """The engine's argv, or None in `attach` mode where the engine is someone else's to run.

    vLLM gets its API key as VLLM_API_KEY in its environment (engine_environment), never on its command line,
    where `ps` would show it to every user of the machine. The simulator, local to the Mock cloud, takes it
    as a flag."""
    common = ["--served-model-name", config.served_model_name, "--port", str(config.engine_port),
              "--host", config.engine_host]
    if config.engine_mode == "vllm":
        return ["vllm", "serve", config.model, *common, *config.engine_args]
    if config.engine_api_key:
        common += ["--api-key", config.engine_api_key]
    if config.engine_mode == "simulator":
        timing = ["--load-time", str(config.sim_load_time_s), "--ttft", str(config.sim_ttft_s),
                  "--tokens-per-second", str(config.sim_tokens_per_second)]
        if config.sim_max_num_seqs is not None:
            timing += ["--max-num-seqs", str(config.sim_max_num_seqs)]
        if config.sim_dead_file:
            timing += ["--dead-file", config.sim_dead_file]
        return [sys.executable, "-m", "worker_agent.simulator", "--model", config.model, *common, *timing,
                *config.engine_args]
    return None


def engine_environment(config: AgentConfig) -> dict[str, str]:
    env = dict(os.environ)
    # The engine has no business with the agent's credential for the control plane.
    env.pop("INVENTIV_WORKER_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the agent's ring buffer as they are written
    if config.engine_mode == "vllm" and config.engine_api_key:
        env["VLLM_API_KEY"] = config.engine_api_key  # vLLM reads it as it reads --api-key
    if config.engine_mode == "simulator":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def printable(argv: list[str]) -> str:
    """The command for a log line, with the API key's value masked."""
    shown = [MASK if previous == "--api-key" else arg for previous, arg in zip(["", *argv], argv, strict=False)]
    return " ".join(shown)


def engine_version_hint(config: AgentConfig) -> str | None:
    """The engine version known before the engine answers (registration happens before it does)."""
    if config.engine_mode == "simulator":
        return SIM_VERSION
    if config.engine_mode == "vllm":
        try:
            return importlib.metadata.version("vllm")
        except importlib.metadata.PackageNotFoundError:
            return None
    return None
