"""The broker connection Celery uses, with one repair that keeps workers alive through Redis outages.

When a worker loses Redis, Celery 5.7 `collect()`s the lost connection, then `close()`s it. kombu's
`collect()` drops the transport and, on the way, clears the transport's link back to the connection (its
host, port, options), while a channel of that transport may still be open: closing it failed on the dead
socket. `close()` then closes that channel again; with tasks still running (acknowledged late, so their
messages are unacknowledged) it hands those messages back to Redis, which needs the link, and fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`. Celery ignores only connection errors
there: the worker logged "Unrecoverable error" and exited for good, in the outages that began while tasks
ran (README, "Broker outages"; inventiv/tests/test_broker_outage.py reproduces it).

Here the connection lets go of its transport but leaves the transport's link in place, so the second close
runs as any close does: it releases the channel's sockets, and handing the messages back either works
(Redis is back) or fails with a connection error, which Celery ignores; Redis then delivers them again after
the visibility timeout. Tasks are safe to run twice. (Forgetting the channel instead also kept the worker
alive, but leaked a socket or an epoll descriptor at each outage.)
"""

from celery.app.amqp import AMQP
from kombu import Connection


class BrokerConnection(Connection):
    def _do_close_transport(self):
        # kombu also sets `self._transport.client = None` here; a channel closed later still needs it.
        self._transport = None


class BrokerAMQP(AMQP):
    Connection = BrokerConnection
