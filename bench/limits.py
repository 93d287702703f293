"""The two limits the pipeline is measured against, in the same run:

* **bare pyHanko**: this process, one loop, signing the pipeline's own
  documents with the signer service's own code (``services.signer.pades.sign``:
  the cached parsed key, reserved bytes, the same stamp, font and verification
  footer, the certification of the first signature, the placeholders looked
  for once a document as the signer does), each document signed by as many
  signatures as its flow asks, one after the other, incrementally.
  No database, no broker, no HTTP.
* **bare broker**: aio-pika alone on a quorum queue with a dead-letter
  exchange, as Paraaf's queues are: 1 KB messages published persistent with
  confirms (a window of confirms in flight) and consumed with manual acks, at
  the same time.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime

import aio_pika

from services.signer.fonts import DEFAULT_FONT
from services.signer.pades import SigningJob, sign
from services.signer.stamps import stamp_text
from services.signer.verification import footer_text, new_code, new_secret
from shared.events import PersonRef

__all__ = ["bare_broker", "bare_pyhanko", "signed_chain"]

_SIGNER = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann.aerts@demo.paraaf.be", language="nl")


def signed_chain(pdf: bytes, signatures: int, credentials: tuple[bytes, bytes, tuple[bytes, ...]]) -> tuple[list[float], bytes]:
    """``pdf`` signed ``signatures`` times, one on top of the other as a flow's signers do; the seconds of each, and
    the signed PDF."""
    key, cert, chain = credentials
    times = []
    placeholders = None  # looked for by the first signature, then handed to the next, as the signer keeps them
    for number in range(1, signatures + 1):
        started = time.perf_counter()
        footer = footer_text("nl", "http://127.0.0.1:8083/check", new_code(), new_secret()) if number == 1 else None
        result = sign(SigningJob(
            pdf=pdf, key_der=key, cert_der=cert, chain_der=chain, number=number,
            stamp_text=stamp_text(_SIGNER, None, datetime.now(UTC), "Europe/Brussels"), signer_name=_SIGNER.name,
            reason="Ondertekend", planned=signatures, font_path=DEFAULT_FONT, footer=footer, placeholders=placeholders,
        ))
        pdf, placeholders = result.pdf, result.placeholders
        times.append(time.perf_counter() - started)
    return times, pdf


def bare_pyhanko(documents: list[tuple[bytes, int]], credentials: tuple[bytes, bytes, tuple[bytes, ...]], seconds: float) -> float:
    """Signatures per second over the documents (PDF, signatures it gets), in turn, for at least ``seconds``
    (and at least once through the list); the first document is signed once untimed, to warm up."""
    signed_chain(documents[0][0], 1, credentials)
    signed, started = 0, time.perf_counter()
    while True:
        for pdf, signatures in documents:
            signed += len(signed_chain(pdf, signatures, credentials)[0])
        if time.perf_counter() - started >= seconds:
            return signed / (time.perf_counter() - started)


async def bare_broker(amqp_url: str, count: int = 3000, size: int = 1024, window: int = 64) -> float:
    """Messages per second through one quorum queue: published persistent and confirmed (``window`` in flight),
    consumed and acked, the two at once; over ``count`` messages."""
    name = f"bench.bare.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        publishing = await connection.channel(publisher_confirms=True)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=window)
        dlx = await publishing.declare_exchange(f"{name}.dlx", aio_pika.ExchangeType.TOPIC, durable=True)
        dlq = await publishing.declare_queue(f"{name}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(dlx, "#")
        queue = await consuming.declare_queue(name, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": dlx.name})
        done = asyncio.Event()
        received = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == count:
                done.set()

        tag = await queue.consume(on_message)
        body = b"x" * size
        started = time.perf_counter()
        slots = asyncio.Semaphore(window)

        async def publish(n: int) -> None:
            async with slots:
                await publishing.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(n)), routing_key=name)

        await asyncio.gather(*(publish(n) for n in range(count)))
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        await dlq.delete(if_unused=False, if_empty=False)
        await dlx.delete()
    return count / elapsed
