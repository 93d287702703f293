"""Audit's use cases on an in-memory store: events join the chain as published, the head is sealed, and the chain verifies."""

import base64
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import handlers
from services.audit.seal import Trust, load_sealing_key, new_sealing_key, public_key_of
from shared.events import DocumentWithdrawn
from shared.messaging import Delivery
from tests.support.fakes.audit import FakeAuditStore


async def record(store: FakeAuditStore, body: dict) -> None:
    event = DocumentWithdrawn.model_validate(body)
    await handlers.on_event(event, store, Delivery(event.routing_key, json.dumps(body).encode(), "paraaf.router", None))


def withdrawn(**extra: object) -> dict:
    return {**DocumentWithdrawn(correlation_id=uuid4(), withdrawn_by="elen", reason="r").model_dump(mode="json"), **extra}


async def test_an_event_is_chained_as_published_with_fields_the_audit_does_not_know() -> None:
    """The entry holds the body as the owner published it, a field added by a newer producer included."""
    store = FakeAuditStore()
    await record(store, withdrawn(added_later="kept"))
    [(_, payload, _, _)] = store.entries
    assert json.loads(payload)["event"]["added_later"] == "kept"


async def test_a_chain_of_events_verifies_and_a_changed_entry_is_found() -> None:
    """Three events verify; editing the second one's payload breaks the chain there."""
    store = FakeAuditStore()
    for _ in range(3):
        await record(store, withdrawn())
    assert await handlers.verify(store) == (3, None)
    seq, payload, prev, digest = store.entries[1]
    store.entries[1] = (seq, payload.replace('"r"', '"x"'), prev, digest)
    count, problem = await handlers.verify(store)
    assert count == 3 and problem is not None and problem.seq == 2


async def test_the_head_is_sealed_once_until_the_chain_grows() -> None:
    """A seal covers the head; sealing again with nothing new adds nothing; one more event, one more seal."""
    store, key, now = FakeAuditStore(), load_sealing_key(new_sealing_key()), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert await handlers.seal_head(store, key, now) is None  # an empty chain has nothing to vouch for
    await record(store, withdrawn())
    assert (await handlers.seal_head(store, key, now)).seq == 1
    assert await handlers.seal_head(store, key, now + timedelta(hours=1)) is None
    await record(store, withdrawn())
    assert (await handlers.seal_head(store, key, now + timedelta(hours=2))).seq == 2
    assert await handlers.verify(store, trust=Trust(key=public_key_of(key))) == (2, None)


def test_the_sealing_key_is_read_as_pem_or_as_one_line_of_base64_and_anything_else_is_refused_saying_so() -> None:
    """docker-compose passes the key in an environment variable (one line); the secrets file holds PEM: the same key."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for text in (pem.decode(), base64.b64encode(raw).decode() + "\n"):
        assert public_key_of(load_sealing_key(text)) == public_key_of(key)
    with pytest.raises(ValueError, match="neither PEM nor the base64"):
        load_sealing_key("not-a-key")
