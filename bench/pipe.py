"""A byte pipe: relays each client connection to one connection of its own to the target, bytes as they come,
with no HTTP in between. bench/router.py measures it beside the routers: what one proxy process's extra hop
(two reads, two writes, two wakeups) adds on this machine, whatever the proxy does with the bytes.

    .venv/bin/python bench/pipe.py LISTEN_PORT TARGET_PORT      (both on 127.0.0.1; runs until killed)
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from fleet import LOOPBACK


class Front(asyncio.Protocol):
    """The client's side: opens its own connection to the target, and forwards what the client sends."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.back: Back | None = None
        self.early: list[bytes] = []  # what the client sent before the target's connection was open

    def connection_made(self, transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self.open())

    async def open(self) -> None:
        try:
            _, self.back = await asyncio.get_running_loop().create_connection(lambda: Back(self), LOOPBACK,
                                                                               self.target_port)
        except OSError:
            self.transport.close()
            return
        for data in self.early:
            self.back.transport.write(data)
        self.early = []

    def data_received(self, data: bytes) -> None:
        if self.back is None:
            self.early.append(data)
        else:
            self.back.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.back is not None:
            self.back.transport.close()


class Back(asyncio.Protocol):
    """The target's side: forwards what the target answers."""

    def __init__(self, front: Front) -> None:
        self.front = front

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.front.transport.write(data)

    def connection_lost(self, exc) -> None:
        self.front.transport.close()


async def serve(listen_port: int, target_port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: Front(target_port), LOOPBACK, listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
