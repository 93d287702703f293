"""The citizens' e-counter: a clerk's document for a citizen (say, a
certificate) needs one signature now, from one named person, while the
citizen waits. There is no flow for it: the submission carries its own
one-step flow (`steps`; the source needs `paraaf sources add ... --ad-hoc-steps`),
and a due date one hour from now (`due_at`): the signer's mail asks for the
signature by that time, and the e-counter waits for the outcome until then.
Paraaf refuses (`<source>.rejected`) a due date that has passed or that falls
after the signing link stops working (PARAAF_LINK_TTL_HOURS).

    PARAAF_SOURCE_URL=$(cat var/sources/loket.url) python ecounter.py certificate.pdf

Settings (environment): PARAAF_SOURCE_URL, the AMQP URL `paraaf sources add
loket` printed (required); PARAAF_SOURCE (loket); PARAAF_SUBMITTER
(elen.elaut); PARAAF_SIGNER (the person who signs, bart.baert); PARAAF_OUT
(signed/). Prints the outcome; exits 0 when the document was signed in time,
1 when it was not signed, 2 when it was not done by its due time.
Needs Python 3.11+ and aio-pika.
"""

import asyncio
import base64
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika

FINAL = {"completed", "declined", "rejected", "withdrawn"}


def certificate(pdf: Path, external_ref: str, source: str, due: datetime) -> dict:
    """The SubmitDocument message, with an ad-hoc flow of one signer."""
    return {
        "source": source,
        "external_ref": external_ref,
        "title": f"Attest {external_ref}",
        "steps": [{"action": "sign", "signers": [f"person:{os.environ.get('PARAAF_SIGNER', 'bart.baert')}"]}],
        "submitted_by": os.environ.get("PARAAF_SUBMITTER", "elen.elaut"),
        "filename": pdf.name,
        "pdf": base64.b64encode(pdf.read_bytes()).decode(),
        "language": "nl",
        "due_at": due.isoformat(),  # an instant with its offset; the mail shows it in the city's time zone
        "metadata": {"counter": "loket 3"},
    }


async def submit(channel: aio_pika.abc.AbstractChannel, user: str, source: str, body: dict) -> None:
    exchange = await channel.get_exchange("esign.intake", ensure=False)
    message = aio_pika.Message(
        json.dumps(body).encode(), content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user,  # RabbitMQ checks user_id; Paraaf needs it
    )
    await exchange.publish(message, routing_key=f"submit.{source}")


async def await_outcome(channel: aio_pika.abc.AbstractChannel, source: str, external_ref: str) -> dict:
    """The final outcome of this document, from queue outcomes.<source>; other outcomes are left for their owner."""
    queue = await channel.get_queue(f"outcomes.{source}", ensure=False)
    async with queue.iterator() as messages:
        async for message in messages:
            outcome = json.loads(message.body)
            if outcome["external_ref"] != external_ref:
                await message.reject(requeue=True)  # another counter's document: not ours to take
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            print(f"{external_ref}: {outcome['status']}", flush=True)
            if outcome["status"] in FINAL:
                return outcome
    raise RuntimeError("the outcomes queue closed")


async def main(pdf: Path) -> int:
    url, source = os.environ["PARAAF_SOURCE_URL"], os.environ.get("PARAAF_SOURCE", "loket")
    now = datetime.now(UTC)
    due, external_ref = (now + timedelta(hours=1)).replace(microsecond=0), f"LOKET-{now:%Y%m%d-%H%M%S}"
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await submit(channel, connection.url.user, source, certificate(pdf, external_ref, source, due))
        print(f"{external_ref}: submitted, due {due.isoformat(timespec='seconds')}", flush=True)
        try:
            async with asyncio.timeout((due - datetime.now(UTC)).total_seconds()):
                outcome = await await_outcome(channel, source, external_ref)
        except TimeoutError:
            print(f"{external_ref}: not signed by {due:%H:%M} UTC; tell the citizen it will be mailed")
            return 2
    if outcome["status"] != "completed":
        print(f"{external_ref}: not signed ({outcome.get('code') or outcome['status']}): {outcome.get('reason')}")
        return 1
    out = Path(os.environ.get("PARAAF_OUT", "signed"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{external_ref}.pdf").write_bytes(base64.b64decode(outcome["pdf"]))
    signer = outcome["signatures"][0]["signer"]["name"]
    print(f"{external_ref}: signed by {signer} at {outcome['signatures'][0]['signed_at']}: {out / f'{external_ref}.pdf'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(Path(sys.argv[1]))))
