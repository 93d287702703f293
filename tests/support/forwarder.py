"""A TCP forwarder on a free local port: a stand-in address for RabbitMQ or PostgreSQL that is down (nothing
listens) until the test starts it, and then forwards every connection to the real server; frozen, it keeps every
connection open and passes nothing on, like a server that hangs."""

import asyncio
import contextlib

from tests.support.net import free_port

__all__ = ["Forwarder"]


class Forwarder:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    def freeze(self) -> None:
        """From now on nothing more is passed on, either way; the connections stay open."""
        self._flowing.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(self._copy(reader, upstream_writer), self._copy(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()
