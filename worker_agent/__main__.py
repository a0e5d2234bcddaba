"""`python -m worker_agent`: configuration from INVENTIV_* variables, flags override them."""

import asyncio
import logging
import sys

from .agent import Agent
from .config import ConfigError, load_config
from .redact import RedactingFilter
from .runner import run_agent

EXIT_BAD_CONFIG = 2


def setup_logging(secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))  # on the handler, so every logger's records pass it
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"worker agent: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    setup_logging(config.secrets)
    return asyncio.run(run_agent(Agent(config)))


if __name__ == "__main__":
    sys.exit(main())
