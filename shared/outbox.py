"""Outgoing messages written in the caller's transaction, so a service's state
and the messages it publishes commit together or not at all; shared/messaging.py's
``OutboxRelay`` publishes them. Apart from messaging so that a store or an
operator's command can write to an outbox without loading the broker client.

Inside a message's transaction (:func:`gathered`, which the consumer edge opens) the
rows are gathered and written with one statement just before the commit, and once
committed they are handed to the relay as they are, so it need not read them back:
a round trip per message instead of one per message sent, and none to find them."""

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from shared.contract import Command, Outcome
from shared.db import canonical_json
from shared.events import Event
from shared.names import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, OUTCOMES_EXCHANGE

__all__ = ["Gathered", "Outbox", "OutboxRow", "TransactionStore", "gathered"]


@dataclass(frozen=True)
class OutboxRow:
    """One outgoing message as its outbox row holds it; ``id`` once written."""

    message_id: UUID
    exchange: str
    routing_key: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0

    @classmethod
    def of(cls, record: asyncpg.Record) -> "OutboxRow":
        return cls(
            record["message_id"], record["exchange"], record["routing_key"], record["body"], record["headers"] or {}, record["id"]
        )


# Rows are numbered in the order they were sent; a message_id already in the outbox is not written twice.
_INSERT = (
    "INSERT INTO {schema}.outbox (message_id, exchange, routing_key, body, headers)"
    " SELECT m, e, r, b, h::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[])"
    " WITH ORDINALITY AS sent(m, e, r, b, h, n) ORDER BY n ON CONFLICT (message_id) DO NOTHING RETURNING id, message_id"
)

Taker = Callable[[list[OutboxRow]], None]


class Outbox:
    """Outgoing messages, written in the caller's transaction."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._taker: Taker | None = None

    def hand_to(self, taker: Taker) -> None:
        """Give ``taker`` (the relay) the rows of every gathered transaction once it committed."""
        self._taker = taker

    def committed(self, rows: list[OutboxRow]) -> bool:
        """Hand rows just committed to the relay; False when no relay takes them (it must look for them)."""
        if self._taker is None:
            return False
        self._taker(rows)
        return True

    async def add(self, conn: asyncpg.Connection, message: BaseModel) -> None:
        row = self.row(message)
        await self.add_raw(conn, row.exchange, row.routing_key, row.message_id, row.body)

    @staticmethod
    def row(message: BaseModel) -> OutboxRow:
        """The row that sends ``message`` (an event, outcome or command) on its exchange."""
        if isinstance(message, Event):
            return OutboxRow(message.event_id, EVENTS_EXCHANGE, message.routing_key, message.model_dump_json().encode())
        if isinstance(message, Outcome):
            return OutboxRow(message.outcome_id, OUTCOMES_EXCHANGE, message.routing_key, message.model_dump_json().encode())
        if isinstance(message, Command):
            return OutboxRow(message.command_id, COMMANDS_EXCHANGE, message.routing_key, message.model_dump_json().encode())
        raise TypeError(f"the outbox takes events, outcomes and commands, not {type(message).__name__}")

    async def add_raw(
        self,
        conn: asyncpg.Connection,
        exchange: str,
        routing_key: str,
        message_id: UUID,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        row = OutboxRow(message_id, exchange, routing_key, body, dict(headers or {}))
        gathering = _GATHERING.get()
        if gathering is not None and gathering.conn is conn:
            gathering.add(self, row)
        else:
            await self.write(conn, [row])

    async def write(
        self, conn: asyncpg.Connection, rows: list[OutboxRow], *, change: str = "", args: Sequence[Any] = ()
    ) -> list[OutboxRow]:
        """Insert ``rows`` with one statement; the ones written (a message_id already there is not), with their ids.
        ``change``, a data-modifying statement whose parameters (``args``) are numbered from $6, goes in the same
        statement: the state change and the messages it sends are then atomic without a transaction of their own
        (BEGIN and COMMIT are two round trips more than the statement)."""
        if not rows and not change:
            return []
        columns = zip(
            *((r.message_id, r.exchange, r.routing_key, r.body, canonical_json(dict(r.headers))) for r in rows), strict=True
        )
        sql = (f"WITH change AS ({change}) " if change else "") + _INSERT.format(schema=self.schema)
        written = {m: i for i, m in await conn.fetch(sql, *(map(list, columns) if rows else ([],) * 5), *args)}
        return [replace(r, id=written.pop(r.message_id)) for r in rows if r.message_id in written]


class Gathered:
    """The rows one transaction sends, by outbox: written together by :meth:`write` before the commit, handed to
    the relay by :meth:`committed` after it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._rows: dict[Outbox, list[OutboxRow]] = {}
        self._written: dict[Outbox, list[OutboxRow]] = {}

    def add(self, outbox: Outbox, row: OutboxRow) -> None:
        self._rows.setdefault(outbox, []).append(row)

    async def write(self) -> None:
        for outbox, rows in self._rows.items():
            self._written[outbox] = await outbox.write(self.conn, rows)
        self._rows = {}

    def committed(self) -> bool:
        """Hand what was written to the relays; False when some rows are left for a relay to find."""
        handed = [outbox.committed(rows) for outbox, rows in self._written.items() if rows]
        self._written = {}
        return all(handed)


_GATHERING: contextvars.ContextVar[Gathered | None] = contextvars.ContextVar("outbox_gathering", default=None)


@contextlib.contextmanager
def gathered(conn: asyncpg.Connection) -> Iterator[Gathered]:
    """Gather what is sent on ``conn`` (through any :class:`Outbox`) until :meth:`Gathered.write`."""
    gathering = Gathered(conn)
    token = _GATHERING.set(gathering)
    try:
        yield gathering
    finally:
        _GATHERING.reset(token)


class TransactionStore:
    """Base of a service's PostgreSQL store: its queries run on the connection of the
    transaction a message (or a command) runs in, and what it publishes goes into that
    transaction's outbox, so state and messages commit together or not at all."""

    def __init__(self, conn: asyncpg.Connection, outbox: Outbox) -> None:
        self._conn = conn
        self._outbox = outbox

    async def publish(self, message: BaseModel) -> None:
        await self._outbox.add(self._conn, message)
