"""Several RabbitMQ nodes in one ``PARAAF_AMQP_URL`` (DESIGN.md "Infrastructure"; docs/operations.md "Running on
a cluster").

A URL may list the nodes of one cluster, comma-separated, as PostgreSQL's do:
``amqp://user:password@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost`` (a node without a port has 5672). Every
connection Paraaf makes goes to one live node of the list; the services' long-lived one (:func:`broker`, the
FastStream broker) goes to another whenever its node goes away, and keeps doing so as long as it runs. A URL with
one node behaves exactly as before.

* :func:`nodes`: the one-node URLs a URL lists, in its order.
* :func:`connect` / :func:`connect_robust`: aio-pika's, over the first node (from a random one on) that answers.
* :func:`broker`: a ``RabbitBroker`` whose connection moves to the next node each time it must reconnect.
* :func:`with_user`: the same nodes and vhost as another user.
"""

import asyncio
import functools
import random
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import structlog
from aio_pika import RobustConnection
from yarl import URL

if TYPE_CHECKING:  # the CLI imports this module and must not load FastStream (tests/unit/test_cli_imports.py)
    from faststream.rabbit import RabbitBroker

__all__ = ["FailoverConnection", "broker", "connect", "connect_robust", "nodes", "with_user"]

DEFAULT_PORT = 5672


def _split(url: str) -> tuple[Any, str, list[str]]:
    """(the URL's parts, its user info with the @ or "", its host:port entries)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    return parts, f"{userinfo}@" if userinfo else "", [h for h in hosts.split(",") if h]


def nodes(url: str) -> list[str]:
    """The single-node URLs ``url`` lists, in its order; ``[url]`` when it names one."""
    parts, userinfo, hosts = _split(url)
    if len(hosts) <= 1:
        return [url]
    return [urlunsplit(parts._replace(netloc=userinfo + host)) for host in hosts]


def with_user(url: str, user: str, password: str) -> str:
    """``url``'s nodes and vhost, as ``user``."""
    parts, _, hosts = _split(url)
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{','.join(hosts)}"))


def _address(node: str) -> tuple[str, int]:
    parts = urlsplit(node)
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT


async def _answers(node: str, timeout: float = 2.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*_address(node)), timeout)
    except (OSError, TimeoutError, socket.gaierror):
        return False
    writer.close()
    return True


async def _in_order(url: str) -> list[str]:
    """The nodes to try, from a random one on (so the services spread over the cluster), those that take a TCP
    connection first."""
    listed = nodes(url)
    start = random.randrange(len(listed))
    rotated = listed[start:] + listed[:start]
    if len(rotated) == 1:
        return rotated
    answering = await asyncio.gather(*(_answers(node) for node in rotated))
    return [n for n, ok in zip(rotated, answering, strict=True) if ok] + [n for n, ok in zip(rotated, answering, strict=True) if not ok]


async def connect(url: str, **options: Any) -> aio_pika.abc.AbstractConnection:
    """``aio_pika.connect`` to the first node of ``url`` that takes the connection; the last node's error when none does."""
    error: BaseException | None = None
    for node in await _in_order(url):
        try:
            return await aio_pika.connect(node, **options)
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
            if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
                raise  # every node of a cluster has the same users: another would say the same
            error = exc
    assert error is not None
    raise error


class FailoverConnection(RobustConnection):
    """aio-pika's robust connection that makes each new connection to the next node of its list: the first to the
    first, a reconnection (its node went away, or did not answer) to the one after it, and so on around."""

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, *, nodes: Sequence[str], **options: Any) -> None:
        super().__init__(url, loop, **options)
        self._nodes = [URL(n).with_query(url.query) for n in nodes]
        self._attempts = 0

    @property  # type: ignore[override]
    def transport(self) -> Any:
        return self.__dict__.get("_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        # RobustConnection clears its transport right before each connection attempt (and after a close): the
        # moment to pick the node this attempt goes to.
        nodes = self.__dict__.get("_nodes")
        if value is None and nodes and not self._close_called:
            self.url = nodes[self._attempts % len(nodes)]
            if self._attempts:
                structlog.get_logger().info("connecting to another RabbitMQ node", node=f"{self.url.host}:{self.url.port}")
            self._attempts += 1
        self.__dict__["_transport"] = value


async def connect_robust(url: str, **options: Any) -> aio_pika.abc.AbstractRobustConnection:
    """``aio_pika.connect_robust`` over every node of ``url``: first the first that answers, then round the list."""
    order = await _in_order(url)
    return await aio_pika.connect_robust(order[0], connection_class=functools.partial(FailoverConnection, nodes=order), **options)


@functools.cache
def _cluster_broker() -> type:
    from faststream.rabbit import RabbitBroker

    class ClusterBroker(RabbitBroker):
        """A RabbitBroker that starts on a node that answers and moves to the next one each time it reconnects."""

        def __init__(self, url: str, **options: Any) -> None:
            super().__init__(nodes(url)[0], **options)
            self._cluster_url = url

        async def _connect(self) -> Any:
            order = await _in_order(self._cluster_url)
            self._connection_kwargs["url"] = order[0]
            self._connection_kwargs["connection_class"] = functools.partial(FailoverConnection, nodes=order)
            return await super()._connect()

    return ClusterBroker


def broker(url: str, **options: Any) -> "RabbitBroker":
    """The FastStream broker for ``url``: with one node a plain ``RabbitBroker``, with several one that fails over."""
    from faststream.rabbit import RabbitBroker

    return RabbitBroker(url, **options) if len(nodes(url)) == 1 else _cluster_broker()(url, **options)
