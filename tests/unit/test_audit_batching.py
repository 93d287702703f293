"""Appending many events at once makes exactly the chain appending them one by one makes, in the order given; a batch
is acked with one ack only as far as every earlier delivery is settled."""

import json
from uuid import uuid4

from services.audit import handlers
from services.audit.chain import link_hash, links
from shared.events import DocumentWithdrawn
from shared.messaging import Delivery, _Settled
from tests.support.fakes.audit import FakeAuditStore


def test_links_continue_the_chain_from_its_head_in_order() -> None:
    """Three payloads after a head at entry 5: entries 6 to 7 to 8, each linked to the one before, the first to the head."""
    head = (5, link_hash("0" * 64, "earlier"))
    made = links(head, ["a", "b", "c"])
    assert [link.seq for link in made] == [6, 7, 8]
    assert made[0].prev_hash == head[1] and made[1].prev_hash == made[0].hash and made[2].prev_hash == made[1].hash
    assert all(link.hash == link_hash(link.prev_hash, payload) for link, payload in zip(made, "abc", strict=True))


def withdrawn(**extra: object) -> tuple[DocumentWithdrawn, Delivery]:
    event = DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen", reason="r")
    body = json.dumps({**event.model_dump(mode="json"), **extra}).encode()
    return event, Delivery(event.routing_key, body, "paraaf.router", str(event.event_id))


async def test_a_batch_is_chained_in_the_order_given_as_one_by_one() -> None:
    """Four events recorded as one batch make the same entries, hashes included, as the same events recorded one
    at a time; a field the audit does not know is kept."""
    events = [withdrawn(), withdrawn(added_later="kept"), withdrawn(), withdrawn()]
    batched, single = FakeAuditStore(), FakeAuditStore()
    await handlers.on_events(events, batched)
    for event, delivery in events:
        await handlers.on_event(event, single, delivery)
    assert batched.entries == single.entries
    assert [json.loads(payload)["event"]["event_id"] for _, payload, _, _ in batched.entries] == [str(e.event_id) for e, _ in events]
    assert json.loads(batched.entries[1][1])["event"]["added_later"] == "kept"


def test_one_ack_for_many_never_reaches_past_a_delivery_still_in_hand() -> None:
    """Deliveries 1-3 and 5 written (4 still retried alone): an ack for many may cover 1-3, not 5; once 4 is
    settled, everything up to 5 is."""
    settled = _Settled()
    assert settled.add(1, 2, 3, 5) == 3
    assert settled.add(4) == 5
    assert settled.add(7) == 5  # 6 not settled: 7 waits for its own ack
