"""The web container's healthcheck: GET /api/version/ on this machine, answered 200 or exit 1.

Standard library only and no Django start-up, as it runs every few seconds. It sends a Host header that
ALLOWED_HOSTS accepts (the first entry; any name for "*", the domain for ".example.com"), and says the
request came over HTTPS, so neither ALLOWED_HOSTS nor INVENTIV_HTTPS's redirect turns it away (README,
"Production").
"""

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = "8000"  # uvicorn's port unless UVICORN_PORT says otherwise (as in the image)
TIMEOUT_S = 5
PATH = "/api/version/"


def allowed_host() -> str:
    hosts = [host.strip() for host in os.environ.get("ALLOWED_HOSTS", "localhost").split(",") if host.strip()]
    host = hosts[0] if hosts else "localhost"
    if host == "*":
        return "localhost"
    return host.lstrip(".")


def main() -> int:
    port = os.environ.get("UVICORN_PORT", DEFAULT_PORT)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}",
                                     headers={"Host": allowed_host(), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {PATH} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
