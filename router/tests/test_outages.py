"""The data plane through a real PostgreSQL restart and a real Redis crash, served as production serves it
(uvicorn with the express lane, Redis for shared limits and pushed changes): no request fails, and every
request's trace is in the database once it is back."""

import json
import time

import psycopg
import pytest
import requests

from inventiv.tests.own_servers import (
    ControlPlane,
    OwnPostgres,
    OwnRedis,
    needs_postgresql_binaries,
    needs_redis_server,
    wait_until,
)
from worker_agent.simulator import SimConfig, start_simulator

pytestmark = [pytest.mark.slow, needs_postgresql_binaries(), needs_redis_server(), pytest.mark.timeout(600)]

ENGINE_KEY = "engine-key-outages"
BODY = {"model": "mock-echo", "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 3}
TRACES_WRITTEN_S = 60
SETUP = """
import json
import time
from django.utils import timezone
from catalog.models import InstanceType, LlmModel, Provider, Zone
from instances.credentials import MintedCredentials
from instances.models import Instance
from instances.status import Status
from router.services import create_api_key
Instance.objects.create(
    provider=Provider.objects.get(code="mock"), zone=Zone.objects.get(code="mock-eu-1"),
    instance_type=InstanceType.objects.get(code="MOCK-GPU-S"), model=LlmModel.objects.get(code="mock-echo"),
    status=Status.READY, ready_at=timezone.now(), public_ip="127.0.0.1", engine_port=ENGINE_PORT,
    engine_api_key_encrypted=MintedCredentials("unused", "ENGINE_KEY").encrypted_engine_api_key(),
)
print(json.dumps({"key": create_api_key(name="outages")[1]}))
"""


def test_no_request_fails_and_no_trace_is_lost_while_postgresql_restarts_and_redis_crashes(tmp_path):
    with start_simulator(SimConfig(api_key=ENGINE_KEY, prefill_tokens_per_second=0)) as engine, \
            OwnPostgres.running("inventiv") as postgresql, OwnRedis.running(tmp_path) as redis:
        plane = ControlPlane(tmp_path, database_url=postgresql.url("inventiv"), redis_url=redis.url(3))
        try:
            plane.manage("migrate", "--noinput")
            plane.manage("loaddata", "catalog")
            setup = SETUP.replace("ENGINE_PORT", str(engine.port)).replace("ENGINE_KEY", ENGINE_KEY)
            key = json.loads(plane.manage("shell", "-c", setup).strip().splitlines()[-1])["key"]
            url = plane.web(http="inventiv.asgi:HttpProtocol") + "/v1/chat/completions"
            client = requests.Session()  # one kept connection: the direct lane's requests
            answers = []

            def ask(times: int) -> None:
                for _ in range(times):
                    answers.append(client.post(url, json=BODY, timeout=15,
                                               headers={"Authorization": f"Bearer {key}"}).status_code)

            ask(20)
            redis.stop(kill=True)
            ask(20)
            redis.start()
            ask(20)
            postgresql.stop("fast")
            for _ in range(6):  # across several of the usage writer's flushes (one a second)
                ask(10)
                time.sleep(0.5)
            postgresql.start()
            ask(20)

            assert answers == [200] * len(answers)

            def traces() -> int:
                with psycopg.connect(postgresql.url("inventiv")) as connection:
                    return connection.execute("SELECT count(*) FROM router_requesttrace").fetchone()[0]

            wait_until(lambda: traces() == len(answers), timeout=TRACES_WRITTEN_S,
                       what=f"{len(answers)} traces (the writer keeps them while the database is away)")
            # The routing table's next reload (within the 5 s poll while Redis pushes changes) says it recovered.
            wait_until(lambda: "routing table refreshed again" in plane.log("web"), timeout=TRACES_WRITTEN_S,
                       what="the routing table's reload")
            log = plane.log("web")
            assert "refreshing the routing table failed (OperationalError: " in log
            assert "Traceback" not in log  # one line each: the database away, Redis away and back
        finally:
            plane.stop()
