"""The worker's cloud-init document, read as YAML and run for real by bash against stub commands."""

import io
import os
import subprocess
import tarfile

import pytest
import yaml

from providers.cloudinit import AGENT_UNIT, AUTH_HEADER_FILE, ENV_FILE, INSTALL_SCRIPT, STEPS, render_user_data

TOKEN = "wt-3f9c1b7e5d2a4c8e9b0f1a2d3c4b5a69"
API_KEY = "ek-8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
HOSTILE_MODEL = "org/model\"; touch /tmp/inventiv-pwned; echo '$(id)` && rm -rf $HOME"
BASH_TIMEOUT_S = 10

# Stand-ins for the machine's commands: each logs its arguments (NUL-separated, one call per line).
STUBS = {
    "docker": """#!/bin/bash
{ printf 'docker'; printf '\\0%s' "$@"; printf '\\0VLLM_API_KEY=%s' "${VLLM_API_KEY-}"; printf '\\n'; } >> "$STUB_LOG"
[ "${DOCKER_FAIL:-}" = "$1" ] && exit 1
exit 0
""",
    "curl": """#!/bin/bash
{ printf 'curl'; printf '\\0%s' "$@"; printf '\\n'; } >> "$STUB_LOG"
previous=""
for arg in "$@"; do
  if [ "$previous" = "-o" ]; then cp "$STUB_TARBALL" "$arg"; fi
  previous=$arg
done
exit 0
""",
    "python3": """#!/bin/bash
{ printf 'python3'; printf '\\0%s' "$@"; printf '\\n'; } >> "$STUB_LOG"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/bash\\n{ printf pip; printf "\\\\0%%s" "$@"; printf "\\\\n"; } >> "$STUB_LOG"\\n' > "$3/bin/pip"
  chmod +x "$3/bin/pip"
fi
""",
    "systemctl": """#!/bin/bash
{ printf 'systemctl'; printf '\\0%s' "$@"; printf '\\n'; } >> "$STUB_LOG"
""",
    "apt-get": "#!/bin/bash\nexit 0\n",
    "sleep": "#!/bin/bash\nexit 0\n",
}


def render(**overrides):
    values = {
        "instance_id": "0b5e7f0a-6a44-4cc9-8d1e-0f6a1f3c2b11",
        "control_plane_url": "https://inventiv.example.com/",
        "worker_token": TOKEN,
        "engine_api_key": API_KEY,
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "served_model_name": "Qwen/Qwen2.5-7B-Instruct",
        "vllm_image": "vllm/vllm-openai:v0.11.0",
        "agent_port": 8081,
        "engine_port": 8000,
        **overrides,
    }
    return render_user_data(**values)


def files_of(document: str) -> dict[str, dict]:
    return {entry["path"]: entry for entry in yaml.safe_load(document)["write_files"]}


def source_env_file(content: str, tmp_path, *names: str) -> list[str]:
    """The values bash sees after `set -a; . worker.env`."""
    env_file = tmp_path / "worker.env"
    env_file.write_text(content)
    printed = " ".join(f'"${name}"' for name in names)
    result = subprocess.run(
        ["bash", "-c", f'set -a; . "$1"; printf "%s\\0" {printed}', "bash", str(env_file)],
        capture_output=True, check=True, timeout=BASH_TIMEOUT_S, cwd=tmp_path,
    )
    return result.stdout.decode().split("\0")[:-1]


@pytest.fixture
def machine(tmp_path):
    """A directory tree standing in for the GPU machine, with stub commands first on PATH."""
    for sub in ("bin", "etc", "home"):
        (tmp_path / sub).mkdir()
    for name, body in STUBS.items():
        (tmp_path / "bin" / name).write_text(body)
        (tmp_path / "bin" / name).chmod(0o755)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, content in (("worker_agent/__init__.py", b""), ("worker_agent/requirements.txt", b"psutil\n")):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    (tmp_path / "agent.tar.gz").write_bytes(buffer.getvalue())
    return tmp_path


def run_install(machine, document: str, **env) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    files = files_of(document)
    (machine / "etc" / "worker.env").write_text(files[ENV_FILE]["content"])
    (machine / "etc" / "auth-header").write_text(files[AUTH_HEADER_FILE]["content"])
    (machine / "install").write_text(files[INSTALL_SCRIPT]["content"])
    result = subprocess.run(
        ["bash", str(machine / "install")],
        capture_output=True,
        timeout=BASH_TIMEOUT_S,
        cwd=machine,
        env={
            "PATH": f"{machine / 'bin'}:{os.environ['PATH']}",
            "INVENTIV_ETC_DIR": str(machine / "etc"),
            "INVENTIV_HOME_DIR": str(machine / "home"),
            "STUB_LOG": str(machine / "calls.log"),
            "STUB_TARBALL": str(machine / "agent.tar.gz"),
            **env,
        },
    )
    log = (machine / "calls.log").read_text() if (machine / "calls.log").exists() else ""
    return result, [line.split("\0") for line in log.splitlines()]


def after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_it_renders_a_cloud_config_document_that_writes_the_worker_files():
    document = render()

    assert document.startswith("#cloud-config\n")
    parsed = yaml.safe_load(document)
    files = files_of(document)
    assert parsed["runcmd"] == [[INSTALL_SCRIPT]]
    assert {path: entry["permissions"] for path, entry in files.items()} == {
        ENV_FILE: "0600", AUTH_HEADER_FILE: "0600", AGENT_UNIT: "0644", INSTALL_SCRIPT: "0700",
    }
    assert all(entry["owner"] == "root:root" for entry in files.values())
    assert files[AUTH_HEADER_FILE]["content"] == f"Authorization: Bearer {TOKEN}\n"
    unit = files[AGENT_UNIT]["content"]
    assert f"EnvironmentFile={ENV_FILE}" in unit and "-m worker_agent" in unit
    script = files[INSTALL_SCRIPT]["content"]
    for step in STEPS:
        assert f"run_step {step} " in script
    assert "/api/worker/agent.tar.gz" in script and "/api/worker/install-failed" in script
    assert "docker run -d --name inventiv-vllm --restart unless-stopped --gpus all" in script


def test_the_environment_file_holds_every_value_the_agent_needs(tmp_path):
    content = files_of(render(extra_env={"HF_TOKEN": "hf_abc"}))[ENV_FILE]["content"]

    names = ["INVENTIV_CONTROL_PLANE_URL", "INVENTIV_INSTANCE_ID", "INVENTIV_WORKER_TOKEN", "INVENTIV_MODEL",
             "INVENTIV_ENGINE_PORT", "INVENTIV_AGENT_PORT", "INVENTIV_ENGINE_API_KEY", "INVENTIV_ENGINE_MODE",
             "VLLM_API_KEY", "HF_TOKEN"]
    assert source_env_file(content, tmp_path, *names) == [
        "https://inventiv.example.com", "0b5e7f0a-6a44-4cc9-8d1e-0f6a1f3c2b11", TOKEN, "Qwen/Qwen2.5-7B-Instruct",
        "8000", "8081", API_KEY, "attach", API_KEY, "hf_abc",
    ]


def test_secrets_stay_in_the_root_only_files():
    document = render()
    files = files_of(document)

    for path in (INSTALL_SCRIPT, AGENT_UNIT):
        assert TOKEN not in files[path]["content"] and API_KEY not in files[path]["content"]
    assert TOKEN not in str(yaml.safe_load(document)["runcmd"])


def test_a_hostile_model_name_cannot_inject_commands(tmp_path):
    content = files_of(render(model=HOSTILE_MODEL, served_model_name=HOSTILE_MODEL))[ENV_FILE]["content"]

    assert source_env_file(content, tmp_path, "INVENTIV_MODEL_ID", "INVENTIV_MODEL") == [HOSTILE_MODEL, HOSTILE_MODEL]
    assert not os.path.exists("/tmp/inventiv-pwned")


def test_the_install_starts_the_agent_then_vllm_with_secrets_off_the_command_line(machine):
    document = render(model=HOSTILE_MODEL, served_model_name="served-name", engine_args=["--tensor-parallel-size", "2"],
                      extra_env={"HF_TOKEN": "hf_secret_value"})

    result, calls = run_install(machine, document)

    assert result.returncode == 0, result.stderr.decode()
    download = next(call for call in calls if call[0] == "curl")
    assert "https://inventiv.example.com/api/worker/agent.tar.gz" in download
    assert after(download, "-H") == f"@{machine / 'etc' / 'auth-header'}"
    assert (machine / "home" / "agent" / "worker_agent" / "__init__.py").exists()
    requirements = machine / "home" / "agent" / "worker_agent" / "requirements.txt"
    assert ["pip", "install", "-q", "-r", str(requirements)] in calls
    assert ["systemctl", "enable", "--now", "inventiv-agent.service"] in calls
    run = next(call for call in calls if call[:2] == ["docker", "run"])
    assert after(run, "--entrypoint") == "vllm" and after(run, "serve") == HOSTILE_MODEL  # `vllm serve <model>`
    assert after(run, "--served-model-name") == "served-name"
    assert after(run, "--port") == "8000" and after(run, "--gpus") == "all"
    assert after(run, "--tensor-parallel-size") == "2"
    assert run[-1] == f"VLLM_API_KEY={API_KEY}"  # in the environment docker hands to the container...
    assert "HF_TOKEN" in run and "hf_secret_value" not in run[:-1]  # the token by name: docker reads its value
    assert all(API_KEY not in arg and TOKEN not in arg for call in calls for arg in call[:-1] if call[0] == "docker")
    assert all(TOKEN not in arg for call in calls if call[0] == "curl" for arg in call)  # ...never as an argument
    assert not any("install-failed" in arg for call in calls for arg in call)
    assert not os.path.exists("/tmp/inventiv-pwned")


def test_the_operators_ssh_key_is_authorised_only_when_configured():
    assert "ssh_authorized_keys" not in yaml.safe_load(render())
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample operator@laptop"
    assert yaml.safe_load(render(ssh_public_key=key))["ssh_authorized_keys"] == [key]


def test_a_failed_step_is_reported_to_the_control_plane_and_stops_the_install(machine):
    result, calls = run_install(machine, render(), DOCKER_FAIL="pull")

    assert result.returncode == 1
    report = calls[-1]
    assert report[0] == "curl" and "https://inventiv.example.com/api/worker/install-failed" in report
    assert after(report, "-d") == '{"step": "pull-engine-image"}'
    assert after(report, "-H") == f"@{machine / 'etc' / 'auth-header'}"
    assert not any(call[:2] == ["docker", "run"] for call in calls)


@pytest.mark.parametrize(
    "overrides",
    [
        {"model": "org/model\nINVENTIV_WORKER_TOKEN=stolen"},
        {"extra_env": {"bad-name": "x"}},
        {"extra_env": {"INVENTIV_WORKER_TOKEN": "x"}},
        {"engine_port": 0},
        {"control_plane_url": "inventiv.example.com"},
    ],
)
def test_it_refuses_values_that_would_break_the_files(overrides):
    with pytest.raises(ValueError):
        render(**overrides)
