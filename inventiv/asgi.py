"""The ASGI entry point: `/v1/...` goes to the router's data plane (router/asgi.py), outside Django's
request stack for latency (and its generation requests outside the ASGI request cycle too, with the
`HttpProtocol` below); everything else goes to Django. Lifespan events start and stop the router's
background work (table refresh, usage writer).

Django is served through its WSGI application on a fixed thread pool (a2wsgi) rather than Django's own
ASGI handler: every view here is synchronous, and Django's ASGI handler runs them one at a time on a
single thread, which capped worker heartbeats at ~110/s. A fixed pool also keeps one persistent database
connection per thread.
"""

import os

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventiv.settings")

from inventiv.env import env_int  # noqa: E402

# Threads serving Django views in each web process (each holds at most one database connection).
WEB_THREADS = env_int("WEB_THREADS", 8, minimum=1)
django_application = WSGIMiddleware(get_wsgi_application(), workers=WEB_THREADS)

from instances.worker_asgi import HEARTBEAT_PATH, HeartbeatApp, close_connections_on  # noqa: E402
from router.asgi import RouterApp  # noqa: E402
from router.server import router_protocol  # noqa: E402

router_application = RouterApp()
# uvicorn's HTTP protocol with the data plane's express lane (router/server.py): serve with
# `uvicorn inventiv.asgi:application --http inventiv.asgi:HttpProtocol`.
HttpProtocol = router_protocol(router_application)
heartbeat_application = HeartbeatApp(threads=WEB_THREADS)
DATA_PLANE_PREFIX = "/v1/"


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await router_application(scope, receive, send)
    if scope["type"] == "http" and scope["path"].startswith(DATA_PLANE_PREFIX):
        return await router_application(scope, receive, send)
    if scope["type"] == "http" and scope["path"] == HEARTBEAT_PATH:
        return await heartbeat_application(scope, receive, send)
    return await django_application(scope, receive, send)


def close_database_connections() -> None:
    """Close the connections the Django and heartbeat thread pools keep open (tests drop their database)."""
    close_connections_on(django_application.executor, WEB_THREADS)
    heartbeat_application.close_connections()
