"""`python -m worker_agent`: configuration from INVENTIV_* variables, flags override them."""

import asyncio
import logging
import sys

from .agent import Agent
from .config import ConfigError, load_config
from .joining import JoinFailed, joined
from .redact import RedactingFilter
from .runner import run_agent

EXIT_BAD_CONFIG = 2
EXIT_JOIN_FAILED = 3


def setup_logging(secrets: list[str]) -> RedactingFilter:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redacting = RedactingFilter(secrets)
    handler.addFilter(redacting)  # on the handler, so every logger's records pass it
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return redacting


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"worker agent: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    redacting = setup_logging(config.secrets)
    if config.needs_join:
        # A host the operator runs: the join token for an identity of its own (joining.py), kept for restarts.
        try:
            config = asyncio.run(joined(config))
        except JoinFailed as exc:
            logging.getLogger("worker_agent").error("cannot join: %s", exc)
            return EXIT_JOIN_FAILED
        redacting.secrets = config.secrets
    return asyncio.run(run_agent(Agent(config)))


if __name__ == "__main__":
    sys.exit(main())
