"""Builders for the router's tests: engines (simulators) registered as ready instances, keys, clients."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from django.utils import timezone
from openai import OpenAI

from catalog.models import LlmModel
from instances.credentials import MintedCredentials, mint_credentials
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import make_instance
from router.config import RouterConfig
from router.services import create_api_key
from worker_agent.simulator.inprocess import LOOPBACK

MODEL = "mock-echo"
WAIT_TIMEOUT_S = 10.0
POLL_S = 0.02
# Short breaker cooldown and flush interval keep the tests quick; everything else is as in production.
TEST_CONFIG = RouterConfig(breaker_cooldown_s=0.5, flush_interval_s=0.2)


def router_config(**changes) -> RouterConfig:
    return dataclasses.replace(TEST_CONFIG, **changes)


@dataclass
class Engine:
    instance: Instance
    server: object  # an AppThread, a BreakingUpstream, or a process handle with .port and .stop()
    api_key: str

    @property
    def id(self) -> str:
        return str(self.instance.pk)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.port}"


def serving_instance(*, port: int, engine_key: str, model: str = MODEL, status: str = Status.READY) -> Instance:
    """A ready instance whose engine listens on loopback `port` and expects `engine_key`."""
    encrypted = MintedCredentials(worker_token="unused", engine_api_key=engine_key).encrypted_engine_api_key()
    instance = make_instance(status=status, with_server=False, public_ip=LOOPBACK, engine_port=port,
                             engine_api_key_encrypted=encrypted, ready_at=timezone.now())
    if model != MODEL:
        instance.model = LlmModel.objects.get(code=model)
        instance.save(update_fields=["model"])
    return instance


def new_engine_key() -> str:
    return mint_credentials().engine_api_key


def client_key(**limits) -> str:
    """A fresh API key in clear."""
    return create_api_key(name="tests", **limits)[1]


def openai_client(router_url: str, key: str) -> OpenAI:
    # No retries: the tests look at what the router answers, not at what the client hides.
    return OpenAI(base_url=f"{router_url}/v1", api_key=key, max_retries=0, timeout=WAIT_TIMEOUT_S)


def wait_for(predicate, *, timeout: float = WAIT_TIMEOUT_S, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_S)
