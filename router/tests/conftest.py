import threading

import pytest
from django.db.backends.signals import connection_created

from router.asgi import RouterApp
from router.config import RouterConfig
from router.server import router_protocol
from router.tests.factories import TEST_CONFIG, Engine, new_engine_key, serving_instance
from router.tests.servers import UvicornThread
from worker_agent.simulator import SimConfig
from worker_agent.simulator.inprocess import start_simulator



def _read_uncommitted(sender, connection, **kwargs):
    if connection.vendor == "sqlite" and threading.current_thread().name.startswith("router-db"):
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")


@pytest.fixture(autouse=True)
def _router_reads_lock_nothing():
    """The test database is SQLite in memory, shared between threads through one cache, where a reader
    holding a table lock makes a concurrent writer fail at once (no busy wait). The router's thread reads
    twice a second; letting it read uncommitted rows means it never blocks a test that writes meanwhile.
    (Tests still avoid writing while the router writes traces.) File databases and PostgreSQL are not
    affected."""
    connection_created.connect(_read_uncommitted)
    yield
    connection_created.disconnect(_read_uncommitted)


@pytest.fixture
def engines(seed):
    """Start in-process simulators, each registered as a ready instance: `engines(model=..., ttft_s=...)`."""
    started = []

    def start(model: str = "mock-echo", **config) -> Engine:
        key = new_engine_key()
        server = start_simulator(SimConfig(model=model, api_key=key, **config))
        started.append(server)
        return Engine(serving_instance(port=server.port, engine_key=key, model=model), server, key)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_router(seed):
    """Start the router under uvicorn with the express lane, as production serves it: `start_router(config=...)`;
    stopped (traces flushed) at teardown."""
    servers = []

    def start(config: RouterConfig = TEST_CONFIG) -> UvicornThread:
        app = RouterApp(config)
        server = UvicornThread(app, http=router_protocol(app)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()

