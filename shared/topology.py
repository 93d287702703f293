"""The broker topology every service agrees on (DESIGN.md, "Infrastructure").

Exchanges: ``esign.events`` (domain events), ``esign.intake`` (submissions),
``esign.outcomes`` (results for the sending systems), ``esign.commands``
(service-to-service commands that must stay out of the audited event stream),
``esign.dlx`` (dead letters). A message nobody is bound to receive is not
lost: the topic exchanges name ``esign.unrouted`` as their alternate
exchange, whose queue ``unrouted`` keeps it for an operator.

Each consuming queue is a durable quorum queue with a delivery limit whose
dead letters go to ``<queue>.dlq``.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustExchange
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

__all__ = [
    "COMMANDS",
    "DLX",
    "EVENTS",
    "INTAKE",
    "OUTCOMES",
    "UNROUTED",
    "Binding",
    "QueueSpec",
    "declare_topology",
    "holding_queue",
]

UNROUTED = RabbitExchange("esign.unrouted", type=ExchangeType.FANOUT, durable=True)
_ALTERNATE = {"alternate-exchange": UNROUTED.name}
EVENTS = RabbitExchange("esign.events", type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE)
INTAKE = RabbitExchange("esign.intake", type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE)
OUTCOMES = RabbitExchange("esign.outcomes", type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE)
COMMANDS = RabbitExchange("esign.commands", type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE)
DLX = RabbitExchange("esign.dlx", type=ExchangeType.DIRECT, durable=True)

EXCHANGES = {e.name: e for e in (UNROUTED, EVENTS, INTAKE, OUTCOMES, COMMANDS, DLX)}


@dataclass(frozen=True)
class Binding:
    exchange: RabbitExchange
    routing_key: str


@dataclass(frozen=True)
class QueueSpec:
    """A consuming queue and what it is bound to; the first binding is the subscriber's."""

    name: str
    bindings: tuple[Binding, ...]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def rabbit_queue(self, delivery_limit: int) -> RabbitQueue:
        return RabbitQueue(
            self.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DLX.name,
                "x-dead-letter-routing-key": self.name,
            },
            routing_key=self.bindings[0].routing_key,
        )


def holding_queue(name: str) -> RabbitQueue:
    """A queue that only keeps messages for operators (dead letters, rejects, unrouted)."""
    return RabbitQueue(name, queue_type=QueueType.QUORUM, durable=True)


async def declare_topology(
    broker: RabbitBroker, queues: Iterable[QueueSpec] = (), *, delivery_limit: int = 5
) -> None:
    """Declare the exchanges, then each queue with its dead-letter queue and bindings."""
    exchanges: dict[str, AbstractRobustExchange] = {
        name: await broker.declare_exchange(ex) for name, ex in EXCHANGES.items()
    }
    unrouted = await broker.declare_queue(holding_queue("unrouted"))
    await unrouted.bind(exchanges[UNROUTED.name])
    for spec in queues:
        dlq = await broker.declare_queue(holding_queue(spec.dead_letter_queue))
        await dlq.bind(exchanges[DLX.name], routing_key=spec.name)
        queue = await broker.declare_queue(spec.rabbit_queue(delivery_limit))
        for binding in spec.bindings:
            await queue.bind(exchanges[binding.exchange.name], routing_key=binding.routing_key)
