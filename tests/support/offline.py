"""The network cut for a block of a test: every outgoing connection and name lookup made in this process is
refused and recorded, so a test can show that nothing was fetched instead of trusting a flag."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["NetworkCut", "network_cut"]


@dataclass
class NetworkCut:
    attempts: list[str] = field(default_factory=list)  # what was tried while the network was cut


@contextmanager
def network_cut() -> Iterator[NetworkCut]:
    """Within the block, sockets cannot connect (asyncio, aiohttp and httpx all go through ``socket.connect``)."""
    cut = NetworkCut()
    real = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(sock: socket.socket, address: object) -> None:
        cut.attempts.append(f"connect {address}")
        raise ConnectionRefusedError(f"the test cut the network (connect to {address})")

    def connect_ex(sock: socket.socket, address: object) -> int:
        connect(sock, address)
        return 1  # not reached

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        cut.attempts.append(f"lookup {host}")
        raise socket.gaierror(f"the test cut the network (lookup of {host})")

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo  # type: ignore[method-assign, assignment]
    try:
        yield cut
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = real  # type: ignore[method-assign, assignment]
