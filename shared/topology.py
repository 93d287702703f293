"""The broker topology and who may do what on it (DESIGN.md "Infrastructure"
and "Trust boundaries"), in one place: ``paraaf broker setup`` declares it
and derives every user's permissions from it, and every consumer derives
from it whose messages it accepts.

Exchanges: ``esign.events`` (domain events), ``esign.intake`` (submissions),
``esign.outcomes`` (results for the sending systems), ``esign.commands``
(service-to-service commands kept out of the audited event stream),
``esign.dlx`` (dead letters). A message nobody is bound to receive is not
lost: the topic exchanges name ``esign.unrouted`` as their alternate
exchange, whose queue ``unrouted`` keeps it for an operator.

Each consuming queue is a durable quorum queue with a delivery limit whose
dead letters go to ``<queue>.dlq``. Services declare nothing: they find
their queues (passively) where ``paraaf broker setup`` put them, so a
service's broker user needs no right to create, bind or delete anything.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from shared.contract import (
    SOURCE_NAME,
    ReassignRequest,
    RegisterAbsence,
    ReissueSigningLink,
    ResendSigningMail,
    SendDownloadLink,
    SendSigningLink,
    SendSignInLink,
    WithdrawDocument,
)
from shared.events import (
    CertificateRevoked,
    DeadLetterDropped,
    DeadLetterReplayed,
    DocumentAccepted,
    DocumentCompleted,
    DocumentDeclined,
    DocumentRejected,
    DocumentSubmitted,
    DocumentWithdrawn,
    IncidentDismissed,
    NotificationFailed,
    NotificationSent,
    RoutingFailed,
    SignatureCancelled,
    SignatureDeclined,
    SignatureReassigned,
    SignatureRequested,
    Signed,
    SigningMailResent,
    TimestampFailed,
    WebhookAbandoned,
    WebhookDelivered,
)
from shared.names import (
    COMMANDS_EXCHANGE,
    DLX_EXCHANGE,
    EVENTS_EXCHANGE,
    HOLDING_QUEUES,
    INTAKE_EXCHANGE,
    OPERATOR,
    OUTCOMES_EXCHANGE,
    REJECTED_QUEUE,
    UNROUTED_EXCHANGE,
    broker_user,
    outcomes_queue_name,
    source_of_user,
    source_user,
)

__all__ = [
    "COMMANDS",
    "DLX",
    "EVENTS",
    "EXCHANGES",
    "GROUP_SIZE",
    "HOLDING_QUEUES",
    "INTAKE",
    "OUTCOMES",
    "OPERATOR",
    "OPERATOR_SPEC",
    "QUORUM",
    "QUORUM_NODES",
    "REJECTED_QUEUE",
    "SOURCE_REQUESTS",
    "TOPOLOGY",
    "UNROUTED",
    "Binding",
    "QueueSpec",
    "ServiceSpec",
    "Topology",
    "broker_user",
    "outcomes_queue",
    "source_of_user",
    "source_user",
]

UNROUTED = RabbitExchange(UNROUTED_EXCHANGE, type=ExchangeType.FANOUT, durable=True, declare=False)
_ALTERNATE = {"alternate-exchange": UNROUTED.name}
EVENTS = RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE, declare=False)
INTAKE = RabbitExchange(INTAKE_EXCHANGE, type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE, declare=False)
OUTCOMES = RabbitExchange(OUTCOMES_EXCHANGE, type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE, declare=False)
COMMANDS = RabbitExchange(COMMANDS_EXCHANGE, type=ExchangeType.TOPIC, durable=True, arguments=_ALTERNATE, declare=False)
DLX = RabbitExchange(DLX_EXCHANGE, type=ExchangeType.DIRECT, durable=True, declare=False)

EXCHANGES = {e.name: e for e in (UNROUTED, EVENTS, INTAKE, OUTCOMES, COMMANDS, DLX)}
TOPIC_EXCHANGES = (EVENTS, INTAKE, OUTCOMES, COMMANDS)


# Every queue is a quorum queue replicated on three nodes of a cluster (on fewer, on as many as there are): a
# publisher's confirm comes once a majority of them holds the message, and a queue survives the loss of one node.
GROUP_SIZE = "x-quorum-initial-group-size"
QUORUM_NODES = 3
QUORUM: dict[str, object] = {"x-queue-type": QueueType.QUORUM.value, GROUP_SIZE: QUORUM_NODES}


@dataclass(frozen=True)
class Binding:
    exchange: RabbitExchange
    routing_key: str


@dataclass(frozen=True)
class QueueSpec:
    """A consuming queue and what it is bound to."""

    name: str
    bindings: tuple[Binding, ...]
    description: str = ""

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def arguments(self, delivery_limit: int) -> dict[str, object]:
        return {
            **QUORUM,
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DLX.name,
            "x-dead-letter-routing-key": self.name,
        }

    def rabbit_queue(self) -> RabbitQueue:
        """The queue as a consumer finds it: passively, never declaring or binding it."""
        return RabbitQueue(self.name, durable=True, declare=False)


def _events(*types: type) -> tuple[str, ...]:
    return tuple(t.routing_key for t in types)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ServiceSpec:
    """What one service consumes and what it may publish (exchange name -> routing-key patterns)."""

    name: str
    consumes: tuple[QueueSpec, ...] = ()
    publishes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def may_publish(self, exchange: str, routing_key: str) -> bool:
        return any(re.fullmatch(pattern, routing_key) for pattern in self.publishes.get(exchange, ()))


def _exact(*keys: str) -> tuple[str, ...]:
    return tuple(re.escape(k) for k in keys)


OUTCOME_KEY = rf"{SOURCE_NAME}\.(accepted|rejected|completed|declined|withdrawn|status)"
# What a source may publish on esign.intake, each followed by its own name: submit a document, withdraw one of its
# own, ask where one of its own stands.
SOURCE_REQUESTS = ("submit", "withdraw", "status")


def outcomes_queue(source: str) -> QueueSpec:
    """Where a source reads its own outcomes (declared by `paraaf sources add`)."""
    return QueueSpec(outcomes_queue_name(source), (Binding(OUTCOMES, f"{source}.*"),))


# What the operator's tooling publishes in its own name (replaying, it publishes as the original publisher).
OPERATOR_SPEC = ServiceSpec(
    OPERATOR,
    publishes={
        EVENTS.name: _exact(
            DeadLetterDropped.routing_key, DeadLetterReplayed.routing_key, IncidentDismissed.routing_key,
            CertificateRevoked.routing_key,
        ),
        COMMANDS.name: _exact(ResendSigningMail.routing_key),
    },
)


@dataclass(frozen=True)
class Topology:
    services: tuple[ServiceSpec, ...]
    operator: ServiceSpec = OPERATOR_SPEC

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(f"no service `{name}` in the topology")

    @property
    def queues(self) -> tuple[QueueSpec, ...]:
        return tuple(q for s in self.services for q in s.consumes)

    def owners(self, routing_key: str) -> tuple[str, ...]:
        """The services that may publish a message with this routing key on esign.events or esign.commands."""
        return tuple(
            s.name
            for s in (*self.services, self.operator)
            if s.may_publish(EVENTS.name, routing_key) or s.may_publish(COMMANDS.name, routing_key)
        )

    def trusted_users(self, prefix: str, routing_key: str) -> frozenset[str]:
        """Whose messages with this routing key a consumer accepts: the owning services', or a source's own requests."""
        kind, _, source = routing_key.partition(".")
        if kind in SOURCE_REQUESTS and re.fullmatch(SOURCE_NAME, source):
            return frozenset({source_user(prefix, source)})
        return frozenset(broker_user(prefix, owner) for owner in self.owners(routing_key))

    def with_services(self, *extra: ServiceSpec) -> "Topology":
        return Topology(self.services + tuple(extra), self.operator)


def _queue(name: str, bindings: Iterable[tuple[RabbitExchange, str]]) -> QueueSpec:
    return QueueSpec(name, tuple(Binding(exchange, key) for exchange, key in bindings))


INTAKE_SUBMISSIONS = _queue("intake.submissions", [(INTAKE, "submit.*")])
INTAKE_REQUESTS = _queue("intake.requests", [(INTAKE, "withdraw.*"), (INTAKE, "status.*")])
INTAKE_EVENTS = _queue(
    "intake.events",
    [(EVENTS, k) for k in _events(DocumentAccepted, DocumentRejected, DocumentCompleted, DocumentDeclined, DocumentWithdrawn)],
)
ROUTER_EVENTS = _queue(
    "router.events",
    [
        *((EVENTS, k) for k in _events(DocumentSubmitted, Signed, SignatureDeclined)),
        (COMMANDS, WithdrawDocument.routing_key),
        (COMMANDS, RegisterAbsence.routing_key),
        (COMMANDS, ReassignRequest.routing_key),
    ],
)
SIGNER_EVENTS = _queue(
    "signer.events",
    [
        *(
            (EVENTS, k)
            for k in _events(
                SignatureRequested,
                SignatureCancelled,
                SignatureReassigned,
                DocumentCompleted,
                DocumentDeclined,
                DocumentWithdrawn,
                NotificationFailed,
            )
        ),
        (COMMANDS, ReissueSigningLink.routing_key),
        (COMMANDS, ResendSigningMail.routing_key),
    ],
)
NOTIFIER_EVENTS = _queue(
    "notifier.events",
    [
        (COMMANDS, SendSigningLink.routing_key),
        (COMMANDS, SendDownloadLink.routing_key),
        (COMMANDS, SendSignInLink.routing_key),
        *(
            (EVENTS, k)
            for k in _events(
                Signed,
                SignatureCancelled,
                SignatureReassigned,
                DocumentCompleted,
                DocumentDeclined,
                DocumentWithdrawn,
                RoutingFailed,
            )
        ),
    ],
)
AUDIT_EVENTS = _queue("audit.events", [(EVENTS, "#")])

TOPOLOGY = Topology(
    (
        ServiceSpec(
            "intake",
            consumes=(INTAKE_SUBMISSIONS, INTAKE_REQUESTS, INTAKE_EVENTS),
            publishes={
                EVENTS.name: _exact(*_events(DocumentSubmitted, DocumentRejected, WebhookAbandoned, WebhookDelivered)),
                OUTCOMES.name: (OUTCOME_KEY,),
                COMMANDS.name: _exact(WithdrawDocument.routing_key),  # a source withdrawing its own document
                DLX.name: (".*",),
            },
        ),
        ServiceSpec(
            "router",
            consumes=(ROUTER_EVENTS,),
            publishes={
                EVENTS.name: _exact(
                    *_events(
                        DocumentAccepted,
                        DocumentRejected,
                        DocumentCompleted,
                        DocumentDeclined,
                        DocumentWithdrawn,
                        SignatureRequested,
                        SignatureReassigned,
                        SignatureCancelled,
                        RoutingFailed,
                    )
                ),
                DLX.name: (".*",),
            },
        ),
        ServiceSpec(
            "signer",
            consumes=(SIGNER_EVENTS,),
            publishes={
                # incident.dismissed: an operator dismissing one on the portal's incidents page
                EVENTS.name: _exact(*_events(Signed, SignatureDeclined, SigningMailResent, TimestampFailed, IncidentDismissed)),
                COMMANDS.name: _exact(
                    SendSigningLink.routing_key,
                    SendDownloadLink.routing_key,
                    SendSignInLink.routing_key,
                    WithdrawDocument.routing_key,
                    RegisterAbsence.routing_key,
                    ReassignRequest.routing_key,
                ),
                DLX.name: (".*",),
            },
        ),
        ServiceSpec(
            "notifier",
            consumes=(NOTIFIER_EVENTS,),
            publishes={
                EVENTS.name: _exact(*_events(NotificationSent, NotificationFailed)),
                COMMANDS.name: _exact(ReissueSigningLink.routing_key),
                DLX.name: (".*",),
            },
        ),
        ServiceSpec("audit", consumes=(AUDIT_EVENTS,), publishes={DLX.name: (".*",)}),
    )
)
