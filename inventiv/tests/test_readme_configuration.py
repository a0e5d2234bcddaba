"""README "Configuration" is the contract: every environment variable Inventiv reads has a row in one of its
tables (or in the worker agent's, under "The worker machine"), so a user never meets a variable the README
does not name."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README_ROWS = "\n".join(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("|"))
CONTROL_PLANE_APPS = ("inventiv", "catalog", "providers", "monitoring", "instances", "router", "autoscaling", "finops")
PYTHON_READ = re.compile(
    r"""(?:env_(?:str|bool|int|list|secret)|_networks|os\.environ\.get|ENV_[A-Z_]+ =)\(?\s*"([A-Z][A-Z0-9_]+)\""""
)
SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]+):-")
AGENT_SETTING = re.compile(r'^\s*"(INVENTIV_[A-Z0-9_]+)": \(', re.MULTILINE)
# Read by the process but set by the process itself, or by Python, not by a user.
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE", "VENV", "INVENTIV_SIM_"}  # the last: a prefix, listed by name


def read_by_the_code() -> dict[str, str]:
    found = {}
    for app in CONTROL_PLANE_APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if {"tests", "migrations", "testing"} & set(path.relative_to(ROOT).parts):
                continue
            for name in PYTHON_READ.findall(path.read_text()):
                found.setdefault(name, str(path.relative_to(ROOT)))
    for script, pattern in (("scripts/run.sh", SHELL_READ), ("scripts/healthcheck.py", PYTHON_READ),
                            ("worker_agent/config.py", AGENT_SETTING)):
        for name in pattern.findall((ROOT / script).read_text()):
            found.setdefault(name, script)
    return {name: where for name, where in found.items() if name not in NOT_CONFIGURATION}


def test_the_patterns_see_each_kind_of_reader():
    read = read_by_the_code()
    assert {"DATABASE_URL", "INVENTIV_METRICS_ALLOWED_IPS", "SCW_ACCESS_KEY", "WEB_THREADS"} <= set(read)
    assert {"PORT", "WORKER_POOL", "UVICORN_PORT", "INVENTIV_HEARTBEAT_INTERVAL_S"} <= set(read)


def test_every_variable_the_code_reads_has_a_row_in_the_readme():
    missing = {name: where for name, where in read_by_the_code().items() if f"`{name}`" not in README_ROWS}
    assert missing == {}
