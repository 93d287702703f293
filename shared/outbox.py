"""Outgoing messages written in the caller's transaction, so a service's state
and the messages it publishes commit together or not at all; shared/messaging.py's
``OutboxRelay`` publishes them. Apart from messaging so that a store or an
operator's command can write to an outbox without loading the broker client."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from shared.contract import Command, Outcome
from shared.events import Event
from shared.names import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, OUTCOMES_EXCHANGE

__all__ = ["Outbox", "TransactionStore"]


class Outbox:
    """Outgoing messages, written in the caller's transaction."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def add(self, conn: asyncpg.Connection, message: BaseModel) -> None:
        if isinstance(message, Event):
            await self.add_raw(conn, EVENTS_EXCHANGE, message.routing_key, message.event_id, message.model_dump_json().encode())
        elif isinstance(message, Outcome):
            await self.add_raw(conn, OUTCOMES_EXCHANGE, message.routing_key, message.outcome_id, message.model_dump_json().encode())
        elif isinstance(message, Command):
            await self.add_raw(conn, COMMANDS_EXCHANGE, message.routing_key, message.command_id, message.model_dump_json().encode())
        else:
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
        await conn.execute(
            f"INSERT INTO {self.schema}.outbox (message_id, exchange, routing_key, body, headers)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
            message_id,
            exchange,
            routing_key,
            body,
            dict(headers or {}),
        )


class TransactionStore:
    """Base of a service's PostgreSQL store: its queries run on the connection of the
    transaction a message (or a command) runs in, and what it publishes goes into that
    transaction's outbox, so state and messages commit together or not at all."""

    def __init__(self, conn: asyncpg.Connection, outbox: Outbox) -> None:
        self._conn = conn
        self._outbox = outbox

    async def publish(self, message: BaseModel) -> None:
        await self._outbox.add(self._conn, message)
