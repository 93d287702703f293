"""The permits package: an environmental permit goes through the flow
`omgevingsvergunning` — first the head of department's approval (a paraaf,
recorded, no signature in the PDF), then the general director and the mayor
sign, in parallel. The permit's template holds the sign markers `[SIG01]` and
`[SIG02]`: each signature's stamp lands on its marker, not at the bottom of
the last page.

    PARAAF_SOURCE_URL=$(cat var/sources/omgeving.url) python permits.py permit.pdf

Settings (environment): PARAAF_SOURCE_URL, the AMQP URL `paraaf sources add
omgeving` printed (required); PARAAF_SOURCE (omgeving); PARAAF_SUBMITTER
(olga.omgeving); PARAAF_OUT (signed/); PARAAF_WAIT_SECONDS (3600). Prints
the outcome and the approval and signatures it carries; exits 0 when the
permit came back signed. Needs Python 3.11+ and aio-pika.
"""

import asyncio
import base64
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import aio_pika

FINAL = {"completed", "declined", "rejected", "withdrawn"}


def permit(pdf: Path, external_ref: str, source: str) -> dict:
    """The SubmitDocument message (docs/asyncapi.yaml, components.schemas.SubmitDocument)."""
    return {
        "source": source,
        "external_ref": external_ref,
        "title": f"Omgevingsvergunning {external_ref}",
        "flow": "omgevingsvergunning",
        "submitted_by": os.environ.get("PARAAF_SUBMITTER", "olga.omgeving"),
        "filename": pdf.name,
        "pdf": base64.b64encode(pdf.read_bytes()).decode(),
        "language": "nl",
        "metadata": {"dossier": external_ref},
    }


async def submit(channel: aio_pika.abc.AbstractChannel, user: str, source: str, body: dict) -> None:
    exchange = await channel.get_exchange("esign.intake", ensure=False)
    message = aio_pika.Message(
        json.dumps(body).encode(), content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user,  # RabbitMQ checks user_id; Paraaf needs it
    )
    await exchange.publish(message, routing_key=f"submit.{source}")


async def outcome_of(channel: aio_pika.abc.AbstractChannel, source: str, external_ref: str) -> dict:
    """The final outcome of this permit, from queue outcomes.<source>; other outcomes are left for their owner."""
    queue = await channel.get_queue(f"outcomes.{source}", ensure=False)
    async with queue.iterator() as messages:
        async for message in messages:
            outcome = json.loads(message.body)
            if outcome["external_ref"] != external_ref:
                await message.reject(requeue=True)  # another permit's: not ours to take
                await asyncio.sleep(0.2)
                continue
            await message.ack()
            print(f"{external_ref}: {outcome['status']}", flush=True)
            if outcome["status"] in FINAL:
                return outcome
    raise RuntimeError("the outcomes queue closed")


def report(outcome: dict, out: Path) -> None:
    if outcome["status"] != "completed":
        print(f"not signed ({outcome.get('code') or outcome['status']}): {outcome.get('reason')}")
        return
    for record in outcome["signatures"]:
        behalf = f" (on behalf of {record['on_behalf_of']['name']})" if record.get("on_behalf_of") else ""
        where = f" in field {record['field_name']}" if record.get("field_name") else ""
        print(f"step {record['step']}: {record['action']} by {record['signer']['name']}{behalf}{where}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{outcome['external_ref']}.pdf"
    path.write_bytes(base64.b64decode(outcome["pdf"]))
    print(f"signed permit: {path}")


async def main(pdf: Path) -> int:
    url, source = os.environ["PARAAF_SOURCE_URL"], os.environ.get("PARAAF_SOURCE", "omgeving")
    external_ref = f"OMV-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await submit(channel, connection.url.user, source, permit(pdf, external_ref, source))
        async with asyncio.timeout(float(os.environ.get("PARAAF_WAIT_SECONDS", "3600"))):
            outcome = await outcome_of(channel, source, external_ref)
    report(outcome, Path(os.environ.get("PARAAF_OUT", "signed")))
    return 0 if outcome["status"] == "completed" else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(Path(sys.argv[1]))))
