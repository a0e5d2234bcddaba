"""Print what a docker-compose.yml service runs, as its container would run it, so that the image smoke test
(scripts/smoke_image.sh) runs the very commands of the compose file.

    python scripts/compose_command.py SERVICE [--healthcheck] [--env-file FILE]...

Prints the service's `command` (or, with --healthcheck, its healthcheck's test) one argument per line, with
`${NAME}`, `${NAME:-default}` and `$$` interpolated as Docker Compose does, from the env files given (later
files win) and nothing else. Exits 2 naming the problem when the service or a required variable is missing.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import yaml

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME, and $$ for a dollar.
VARIABLE = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                      r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class ComposeError(Exception):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped (no quoting: Inventiv's env files need none)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match["dollar"]:
            return "$"
        name = match["braced"] or match["bare"]
        value, op = env.get(name), match["op"] or ""
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-") and unset_or_empty:
            return match["arg"]
        if op.endswith("?") and unset_or_empty:
            raise ComposeError(f"{name}: {match['arg'] or 'required'}")
        return value or ""

    return VARIABLE.sub(replace, text)


def service_argv(compose: dict, service: str, *, healthcheck: bool, env: dict[str, str]) -> list[str]:
    try:
        definition = compose["services"][service]
    except KeyError:
        raise ComposeError(f"no service {service!r} in docker-compose.yml") from None
    if healthcheck:
        test = definition.get("healthcheck", {}).get("test")
        if not isinstance(test, list) or test[0] not in ("CMD", "CMD-SHELL"):
            raise ComposeError(f"service {service!r} has no healthcheck test in exec form")
        argv = test[1:] if test[0] == "CMD" else ["sh", "-c", " ".join(test[1:])]
    else:
        command = definition.get("command")
        if command is None:
            raise ComposeError(f"service {service!r} has no command")
        argv = shlex.split(command) if isinstance(command, str) else list(command)
    return [interpolate(str(arg), env) for arg in argv]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service")
    parser.add_argument("--healthcheck", action="store_true")
    parser.add_argument("--env-file", action="append", default=[], type=Path)
    args = parser.parse_args(argv)
    env: dict[str, str] = {}
    for path in args.env_file:
        env.update(read_env_file(path))
    try:
        command = service_argv(yaml.safe_load(COMPOSE_FILE.read_text()), args.service,
                               healthcheck=args.healthcheck, env=env)
    except ComposeError as exc:
        print(f"compose_command: {exc}", file=sys.stderr)
        return 2
    for arg in command:
        print(arg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
