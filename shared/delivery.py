"""How a message arrived (a light module: handlers and command-line tools import it without the broker client)."""

from dataclasses import dataclass

__all__ = ["Delivery"]


@dataclass(frozen=True)
class Delivery:
    """How a message arrived, for the handlers that need more than its body: intake's submissions, a source's
    withdrawal."""

    routing_key: str
    body: bytes
    publisher: str | None
    message_id: str | None
    content_type: str | None = None
