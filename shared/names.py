"""What Paraaf's things on the broker are called: its exchanges, the queues
an operator looks after, the broker users, the headers a dead letter carries.
Plain strings, so the operator's commands and the outbox can name them without
loading FastStream; shared/topology.py builds the exchanges and queues from them.
"""

import re

from shared.contract import SOURCE_NAME

__all__ = [
    "COMMANDS_EXCHANGE",
    "CONSUMING_QUEUES",
    "DLX_EXCHANGE",
    "ERROR",
    "EVENTS_EXCHANGE",
    "HOLDING_QUEUES",
    "INTAKE_EXCHANGE",
    "OPERATOR",
    "OUTCOMES_EXCHANGE",
    "REASON",
    "REJECTED_QUEUE",
    "REPLAYED_ROUTING_KEY",
    "UNROUTED_EXCHANGE",
    "UNTRUSTED",
    "broker_user",
    "outcomes_queue_name",
    "source_of_user",
    "source_user",
]

UNROUTED_EXCHANGE = "esign.unrouted"
EVENTS_EXCHANGE = "esign.events"
INTAKE_EXCHANGE = "esign.intake"
OUTCOMES_EXCHANGE = "esign.outcomes"
COMMANDS_EXCHANGE = "esign.commands"
DLX_EXCHANGE = "esign.dlx"

# The services' queues, in the topology's order: shared/topology.py binds them (a unit test keeps the two alike).
CONSUMING_QUEUES = ("intake.submissions", "intake.requests", "intake.events", "router.events", "signer.events", "notifier.events", "audit.events")
REJECTED_QUEUE = "intake.rejected"  # refused submissions, byte for byte, on esign.dlx with this key
HOLDING_QUEUES = ("unrouted", REJECTED_QUEUE)


def outcomes_queue_name(source: str) -> str:
    """Where a source reads its own outcomes (declared by `paraaf sources add`; topology.outcomes_queue)."""
    return f"outcomes.{source}"
OPERATOR = "operator"  # the broker identity of `paraaf dlq`: reads dead letters, replays them as their publisher

UNTRUSTED = "untrusted publisher"
REASON = "x-paraaf-reason"
ERROR = "x-paraaf-error"  # set only when a handler failed: such a dead letter may be replayed once the cause is fixed
REPLAYED_ROUTING_KEY = "x-paraaf-original-routing-key"


def broker_user(prefix: str, service: str) -> str:
    """The broker user of a Paraaf service (or of the operator tooling)."""
    return f"{prefix}.{service}"


def source_user(prefix: str, source: str) -> str:
    """The broker user of an integrating source system."""
    return f"{prefix}.source.{source}"


def source_of_user(prefix: str, user: str | None) -> str | None:
    """The source a broker user stands for, or None when it is not a source's user."""
    marker = f"{prefix}.source."
    if user and user.startswith(marker) and re.fullmatch(SOURCE_NAME, user[len(marker) :]):
        return user[len(marker) :]
    return None
