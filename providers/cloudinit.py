"""The cloud-init user data that turns a fresh GPU machine into an Inventiv worker.

The document writes three root-only files and runs one install script:
- /etc/inventiv/worker.env (0600): every value the machine needs, secrets included, as shell-quoted
  KEY='value' lines that both `bash` (`set -a; . file`) and systemd (`EnvironmentFile=`) read the same way;
- /etc/inventiv/auth-header (0600): the worker token as an HTTP header, read by `curl -H @file`, so the
  token never shows on a command line in `ps`;
- /etc/systemd/system/inventiv-agent.service: the worker agent (`python3 -m worker_agent`);
- /usr/local/sbin/inventiv-install (0700): checks Docker, downloads and starts the agent, pulls and starts
  vLLM. The script never interpolates a value into a command: it reads them from the environment file, so
  a model name full of shell metacharacters stays one argument. A failed step is reported to the control
  plane (POST /api/worker/install-failed {"step": ...}) and stops the script.

The engine runs `vllm serve <model>` in the launch plan's image with the plan's arguments (tensor parallel
size, context length, memory utilisation: catalog/launch_plan.py). The engine API key reaches vLLM as
VLLM_API_KEY in the container's environment (vLLM reads it like --api-key), and the plan's secrets (HF_TOKEN
for a gated model) the same way: never on a command line. An operator's SSH public key, when configured,
is authorised for the default user.
"""

from __future__ import annotations

import re
import shlex

import yaml

ETC_DIR = "/etc/inventiv"
HOME_DIR = "/opt/inventiv"
ENV_FILE = f"{ETC_DIR}/worker.env"
AUTH_HEADER_FILE = f"{ETC_DIR}/auth-header"
INSTALL_SCRIPT = "/usr/local/sbin/inventiv-install"
AGENT_UNIT = "/etc/systemd/system/inventiv-agent.service"
ENGINE_CONTAINER = "inventiv-vllm"
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_PORT = 65535

# Install steps, in order; the names are what the control plane receives when one fails.
STEPS = ("docker", "download-agent", "install-agent", "start-agent", "pull-engine-image", "start-engine")

_SCRIPT = r"""#!/bin/bash
# Installs and starts the Inventiv worker stack; run once by cloud-init, as root.
# Each step that fails is reported to the control plane, then the script stops.
set -uo pipefail

ETC_DIR="${INVENTIV_ETC_DIR:-%(etc_dir)s}"
HOME_DIR="${INVENTIV_HOME_DIR:-%(home_dir)s}"

set -a
. "$ETC_DIR/worker.env"
set +a

report_failure() {
  curl -fsS --max-time 20 --retry 3 -X POST "$INVENTIV_CONTROL_PLANE_URL/api/worker/install-failed" \
    -H @"$ETC_DIR/auth-header" -H "X-Inventiv-Instance-Id: $INVENTIV_INSTANCE_ID" \
    -H "Content-Type: application/json" -d "{\"step\": \"$1\"}" || true
}

run_step() {
  local step=$1
  shift
  echo "inventiv-install: $step"
  if ! "$@"; then
    echo "inventiv-install: step $step failed" >&2
    report_failure "$step"
    exit 1
  fi
}

check_docker() {
  # Scaleway's GPU OS images ship Docker and the NVIDIA container toolkit.
  systemctl is-active --quiet docker || systemctl start docker || return 1
  docker info >/dev/null
}

download_agent() {
  mkdir -p "$HOME_DIR/agent" &&
    curl -fsSL --retry 5 --max-time 300 -H @"$ETC_DIR/auth-header" \
      -H "X-Inventiv-Instance-Id: $INVENTIV_INSTANCE_ID" \
      "$INVENTIV_CONTROL_PLANE_URL/api/worker/agent.tar.gz" -o "$HOME_DIR/agent.tar.gz" &&
    tar -xzf "$HOME_DIR/agent.tar.gz" -C "$HOME_DIR/agent"
}

install_agent() {
  if ! python3 -m venv "$HOME_DIR/venv"; then
    apt-get update -q && apt-get install -y -q python3-venv && python3 -m venv "$HOME_DIR/venv" || return 1
  fi
  if [ -f "$HOME_DIR/agent/worker_agent/requirements.txt" ]; then
    "$HOME_DIR/venv/bin/pip" install -q -r "$HOME_DIR/agent/worker_agent/requirements.txt" || return 1
  fi
}

start_agent() {
  systemctl daemon-reload && systemctl enable --now inventiv-agent.service
}

pull_engine_image() {
  # Registries hiccup; a few tries spare a whole new machine.
  for attempt in 1 2 3; do
    docker pull "$INVENTIV_VLLM_IMAGE" && return 0
    sleep 15
  done
  return 1
}

start_engine() {
  docker rm -f %(container)s >/dev/null 2>&1 || true
  docker run -d --name %(container)s --restart unless-stopped --gpus all --ipc=host \
    -p "$INVENTIV_ENGINE_PORT:$INVENTIV_ENGINE_PORT" \
    -v "$HOME_DIR/hf-cache:/root/.cache/huggingface" \
    -e VLLM_API_KEY%(extra_env_flags)s \
    --entrypoint vllm "$INVENTIV_VLLM_IMAGE" \
    serve "$INVENTIV_MODEL_ID" --served-model-name "$INVENTIV_MODEL" --port "$INVENTIV_ENGINE_PORT"%(engine_args)s
}

run_step docker check_docker
run_step download-agent download_agent
run_step install-agent install_agent
run_step start-agent start_agent
run_step pull-engine-image pull_engine_image
run_step start-engine start_engine
echo "inventiv-install: done"
"""

_AGENT_UNIT = f"""[Unit]
Description=Inventiv worker agent
After=network-online.target docker.service
Wants=network-online.target

[Service]
EnvironmentFile={ENV_FILE}
WorkingDirectory={HOME_DIR}/agent
ExecStart={HOME_DIR}/venv/bin/python3 -m worker_agent
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def render_user_data(
    *,
    instance_id: str,
    control_plane_url: str,
    worker_token: str,
    engine_api_key: str,
    model: str,
    served_model_name: str,
    vllm_image: str,
    agent_port: int,
    engine_port: int,
    extra_env: dict[str, str] | None = None,
    engine_args: tuple[str, ...] | list[str] = (),
    ssh_public_key: str = "",
) -> str:
    """A `#cloud-config` document that installs and starts vLLM and the worker agent.

    `model` is what vLLM loads (a Hugging Face id); `served_model_name` is the name it answers to, which
    the agent expects in /v1/models. `extra_env` (e.g. HF_TOKEN) reaches both the agent and vLLM;
    `engine_args` follow the model on vLLM's command line (the launch plan's flags).
    Raises ValueError on a value that could break the files (a newline, a bad variable name, a bad port).
    """
    _check_port("agent_port", agent_port)
    _check_port("engine_port", engine_port)
    if not control_plane_url.startswith(("http://", "https://")):
        raise ValueError("control_plane_url must start with http:// or https://")
    env = {
        "INVENTIV_CONTROL_PLANE_URL": control_plane_url.rstrip("/"),
        "INVENTIV_INSTANCE_ID": instance_id,
        "INVENTIV_WORKER_TOKEN": worker_token,
        "INVENTIV_MODEL": served_model_name,
        "INVENTIV_MODEL_ID": model,
        "INVENTIV_ENGINE_PORT": str(engine_port),
        "INVENTIV_AGENT_PORT": str(agent_port),
        "INVENTIV_ENGINE_API_KEY": engine_api_key,
        "INVENTIV_ENGINE_MODE": "attach",
        "INVENTIV_VLLM_IMAGE": vllm_image,
        "VLLM_API_KEY": engine_api_key,
    }
    extra_env = dict(extra_env or {})
    for name in extra_env:
        if not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name (A-Z, 0-9, _)")
        if name in env:
            raise ValueError(f"{name} is set by Inventiv and cannot be overridden")
    env.update(extra_env)
    for name, value in env.items():
        if any(char in value for char in "\n\r\0"):
            raise ValueError(f"{name} contains a line break or a NUL character")
    if any(char in ssh_public_key for char in "\n\r\0"):
        raise ValueError("ssh_public_key must be one line")
    script = _SCRIPT % {
        "etc_dir": ETC_DIR,
        "home_dir": HOME_DIR,
        "container": ENGINE_CONTAINER,
        "extra_env_flags": "".join(f" -e {name}" for name in extra_env),
        "engine_args": "".join(f" {shlex.quote(str(arg))}" for arg in engine_args),
    }
    document = {
        "write_files": [
            _file(ENV_FILE, "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items()), "0600"),
            _file(AUTH_HEADER_FILE, f"Authorization: Bearer {worker_token}\n", "0600"),
            _file(AGENT_UNIT, _AGENT_UNIT, "0644"),
            _file(INSTALL_SCRIPT, script, "0700"),
        ],
        "runcmd": [[INSTALL_SCRIPT]],
    }
    if ssh_public_key:
        document["ssh_authorized_keys"] = [ssh_public_key]
    return "#cloud-config\n" + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


def _check_port(name: str, port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_PORT:
        raise ValueError(f"{name} must be a port number (1-{MAX_PORT})")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so the document reads like the files it writes."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
