"""The agent's configuration: environment variables first, command-line flags override them."""

import argparse
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

ENGINE_MODES = ("vllm", "simulator", "attach")
DEFAULT_ENGINE_PORT = 8000
DEFAULT_AGENT_PORT = 8081
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_RESTART_BACKOFF_S = 1.0  # first delay before restarting an engine that exited
DEFAULT_STOP_GRACE_S = 30.0  # SIGTERM, then SIGKILL after this long


class ConfigError(ValueError):
    """A setting is missing or cannot be understood; the agent refuses to start."""


@dataclass
class AgentConfig:
    control_plane_url: str
    instance_id: str
    worker_token: str = field(repr=False)
    model: str
    served_model_name: str
    engine_port: int = DEFAULT_ENGINE_PORT
    engine_host: str = "0.0.0.0"
    engine_api_key: str | None = field(default=None, repr=False)
    agent_port: int = DEFAULT_AGENT_PORT
    agent_host: str = "0.0.0.0"
    engine_mode: str = "vllm"
    engine_args: list[str] = field(default_factory=list)
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    restart_backoff_s: float = DEFAULT_RESTART_BACKOFF_S
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    sim_load_time_s: float = 0.0
    sim_ttft_s: float = 0.0
    sim_tokens_per_second: float = 0.0
    sim_max_num_seqs: int | None = None
    sim_dead_file: str | None = None

    @property
    def engine_url(self) -> str:
        # The agent always talks to its engine over loopback, whatever address the engine binds.
        return f"http://127.0.0.1:{self.engine_port}"

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log line or a reported engine log line."""
        return [value for value in (self.worker_token, self.engine_api_key) if value]


# env var -> (field, parser); parsers fail loudly on values they do not understand.
def _text(value: str) -> str:
    return value


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(f"{port} is not a TCP port")
    return port


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _mode(value: str) -> str:
    if value not in ENGINE_MODES:
        raise ValueError(f"must be one of {', '.join(ENGINE_MODES)}")
    return value


ENV_SETTINGS: dict[str, tuple[str, object]] = {
    "INVENTIV_CONTROL_PLANE_URL": ("control_plane_url", _text),
    "INVENTIV_INSTANCE_ID": ("instance_id", _text),
    "INVENTIV_WORKER_TOKEN": ("worker_token", _text),
    "INVENTIV_MODEL": ("model", _text),
    "INVENTIV_SERVED_MODEL_NAME": ("served_model_name", _text),
    "INVENTIV_ENGINE_PORT": ("engine_port", _port),
    "INVENTIV_ENGINE_HOST": ("engine_host", _text),
    "INVENTIV_ENGINE_API_KEY": ("engine_api_key", _text),
    "INVENTIV_AGENT_PORT": ("agent_port", _port),
    "INVENTIV_AGENT_HOST": ("agent_host", _text),
    "INVENTIV_ENGINE_MODE": ("engine_mode", _mode),
    "INVENTIV_ENGINE_ARGS": ("engine_args", shlex.split),
    "INVENTIV_HEARTBEAT_INTERVAL_S": ("heartbeat_interval_s", _positive),
    "INVENTIV_ENGINE_RESTART_BACKOFF_S": ("restart_backoff_s", _positive),
    "INVENTIV_ENGINE_STOP_GRACE_S": ("stop_grace_s", _non_negative),
    "INVENTIV_SIM_LOAD_TIME_S": ("sim_load_time_s", _non_negative),
    "INVENTIV_SIM_TTFT_S": ("sim_ttft_s", _non_negative),
    "INVENTIV_SIM_TOKENS_PER_SECOND": ("sim_tokens_per_second", _non_negative),
    "INVENTIV_SIM_MAX_NUM_SEQS": ("sim_max_num_seqs", lambda v: int(_positive(v))),
    "INVENTIV_SIM_DEAD_FILE": ("sim_dead_file", _text),
}
REQUIRED = ("control_plane_url", "instance_id", "worker_token", "model")


def _flag(env_name: str) -> str:
    return "--" + env_name.removeprefix("INVENTIV_").lower().replace("_", "-")


def load_config(argv: list[str], environ: Mapping[str, str] = os.environ) -> AgentConfig:
    """Read INVENTIV_* variables, then apply `--control-plane-url ...`-style flags over them."""
    parser = argparse.ArgumentParser(prog="python -m worker_agent", description="Inventiv worker agent")
    for env_name in ENV_SETTINGS:
        parser.add_argument(_flag(env_name), dest=env_name, default=None, help=f"overrides ${env_name}")
    flags = vars(parser.parse_args(argv))
    values: dict[str, object] = {}
    for env_name, (name, convert) in ENV_SETTINGS.items():
        raw = flags[env_name] if flags[env_name] is not None else environ.get(env_name)
        if raw is None or raw == "":
            continue
        try:
            values[name] = convert(raw)  # type: ignore[operator]
        except ValueError as exc:
            raise ConfigError(f"{env_name}: {exc}") from None
    missing = [name for name in REQUIRED if name not in values]
    if missing:
        names = ", ".join(env for env, (name, _) in ENV_SETTINGS.items() if name in missing)
        raise ConfigError(f"missing settings: {names}")
    values.setdefault("served_model_name", values["model"])
    values["control_plane_url"] = str(values["control_plane_url"]).rstrip("/")
    return AgentConfig(**values)  # type: ignore[arg-type]
