"""Scaleway credentials from the environment (or from files, as Docker and Kubernetes hand out secrets), and
what is wrong with them. Nothing here raises: the adapter reports the problems on every call."""

from __future__ import annotations

import os

from scaleway_core.validations.string_validation import is_access_key, is_project_id, is_secret_key, is_url

ENV_ACCESS_KEY = "SCW_ACCESS_KEY"
ENV_SECRET_KEY = "SCW_SECRET_KEY"
ENV_PROJECT_ID = "SCW_DEFAULT_PROJECT_ID"
ENV_API_URL = "SCW_API_URL"
DEFAULT_API_URL = "https://api.scaleway.com"

HOW_TO_CONFIGURE = (
    f"Set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} (or {ENV_ACCESS_KEY}_FILE and {ENV_SECRET_KEY}_FILE) "
    f"and {ENV_PROJECT_ID}."
)


def setting(name: str, problems: list[str], *, from_file: bool = False) -> str:
    """NAME, or the content of the file NAME_FILE names; a file that cannot be read adds to `problems`."""
    path = os.environ.get(f"{name}_FILE") if from_file else None
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            problems.append(f"{name}_FILE names a file that cannot be read ({exc.strerror})")
            return ""
    return os.environ.get(name, "").strip()


def configuration_problems(access_key: str, secret_key: str, project_id: str, api_url: str) -> list[str]:
    # Messages name the variable, never its value: these are secrets.
    problems = []
    for value, name in ((access_key, ENV_ACCESS_KEY), (secret_key, ENV_SECRET_KEY), (project_id, ENV_PROJECT_ID)):
        if not value:
            problems.append(f"{name} is not set")
    if access_key and not is_access_key(access_key):
        problems.append(f"{ENV_ACCESS_KEY} is not a Scaleway access key (SCW followed by 17 letters or digits)")
    if secret_key and not is_secret_key(secret_key):
        problems.append(f"{ENV_SECRET_KEY} is not a Scaleway secret key (a UUID)")
    if project_id and not is_project_id(project_id):
        problems.append(f"{ENV_PROJECT_ID} is not a Scaleway project id (a UUID)")
    if not is_url(api_url):
        problems.append(f"{ENV_API_URL} is not a URL")
    return problems
