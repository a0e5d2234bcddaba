"""The agent's configuration: environment variables first, command-line flags override them.

The agent of a cloud machine is handed its instance id and worker token. The agent of a host the operator
runs is handed a one-time join token instead (INVENTIV_JOIN_TOKEN, with the engine key the operator chose):
it exchanges it once for an instance id and a worker token, kept in INVENTIV_AGENT_STATE_DIR (joining.py).
"""

import argparse
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

ENGINE_MODES = ("vllm", "simulator", "attach")
DEFAULT_ENGINE_PORT = 8000
DEFAULT_AGENT_PORT = 8081
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
DEFAULT_RESTART_BACKOFF_S = 1.0  # first delay before restarting an engine that exited
DEFAULT_STOP_GRACE_S = 30.0  # SIGTERM, then SIGKILL after this long
DEFAULT_STATE_DIR = "/var/lib/inventiv-agent"  # where a joined agent keeps its worker token


class ConfigError(ValueError):
    """A setting is missing or cannot be understood; the agent refuses to start."""


@dataclass
class AgentConfig:
    control_plane_url: str
    model: str
    served_model_name: str
    # Empty until a join fills them in (`with_identity`) when the agent was given a join token.
    instance_id: str = ""
    worker_token: str = field(default="", repr=False)
    join_token: str = field(default="", repr=False)
    state_dir: str = DEFAULT_STATE_DIR
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
        return [value for value in (self.worker_token, self.engine_api_key, self.join_token) if value]

    @property
    def needs_join(self) -> bool:
        """Given a join token and no worker identity: the agent joins (or reads the identity it kept)."""
        return bool(self.join_token) and not (self.instance_id and self.worker_token)

    def with_identity(self, instance_id: str, worker_token: str) -> "AgentConfig":
        return replace(self, instance_id=instance_id, worker_token=worker_token)


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
    "INVENTIV_JOIN_TOKEN": ("join_token", _text),
    "INVENTIV_AGENT_STATE_DIR": ("state_dir", _text),
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
REQUIRED = ("control_plane_url", "model")
# Who the agent is: its instance id and worker token, or a join token that gets them (and the engine key
# the join hands the control plane, which the router needs to reach the engine).
IDENTITY = ("instance_id", "worker_token")
JOIN = ("join_token", "engine_api_key")


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
    identity = [name for name in IDENTITY if name not in values]
    if identity and "join_token" in values:
        missing += [name for name in JOIN if name not in values]
    elif identity:
        missing += identity
    if missing:
        names = ", ".join(env for env, (name, _) in ENV_SETTINGS.items() if name in missing)
        hint = " (or INVENTIV_JOIN_TOKEN, for a host you run yourself)" if identity and "join_token" not in values \
            else ""
        raise ConfigError(f"missing settings: {names}{hint}")
    values.setdefault("served_model_name", values["model"])
    values["control_plane_url"] = str(values["control_plane_url"]).rstrip("/")
    return AgentConfig(**values)  # type: ignore[arg-type]
