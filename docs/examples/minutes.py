"""The council-minutes package: after a meeting it submits every decision
for signing in one batch and files each signed PDF as its outcome comes in,
matching outcomes to decisions by ``external_ref``.

    PARAAF_SOURCE_URL=$(cat var/sources/notula.url) python minutes.py decision-*.pdf

Settings (environment): PARAAF_SOURCE_URL, the AMQP URL `paraaf sources add
notula` printed (required); PARAAF_SOURCE (notula); PARAAF_FLOW
(collegebesluit); PARAAF_SUBMITTER (elen.elaut); PARAAF_OUT (signed/, where
the signed PDFs go); PARAAF_WAIT_SECONDS (3600). Prints one line per
decision; exits 0 when every decision came back signed.
Needs Python 3.11+ and aio-pika (pip install aio-pika).
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


def decision(pdf: Path, external_ref: str, source: str) -> dict:
    """One SubmitDocument message (docs/asyncapi.yaml, components.schemas.SubmitDocument)."""
    return {
        "source": source,
        "external_ref": external_ref,
        "title": f"Collegebesluit {pdf.stem}",
        "flow": os.environ.get("PARAAF_FLOW", "collegebesluit"),
        "submitted_by": os.environ.get("PARAAF_SUBMITTER", "elen.elaut"),
        "filename": pdf.name,
        "pdf": base64.b64encode(pdf.read_bytes()).decode(),
        "language": "nl",
        "metadata": {"meeting": external_ref.rsplit("-", 1)[0]},
    }


async def submit(channel: aio_pika.abc.AbstractChannel, user: str, source: str, bodies: list[dict]) -> None:
    """Publish each decision on esign.intake, persistent, with our own user_id; confirms make each publish wait
    until RabbitMQ has it."""
    exchange = await channel.get_exchange("esign.intake", ensure=False)  # we may not declare it, only publish
    for body in bodies:
        message = aio_pika.Message(
            json.dumps(body).encode(), content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user,
        )
        await exchange.publish(message, routing_key=f"submit.{source}")


async def outcomes(channel: aio_pika.abc.AbstractChannel, source: str, pending: set[str], final: dict[str, str], out: Path) -> None:
    """Read queue outcomes.<source> until every reference in ``pending`` has a final outcome (put in ``final``);
    file the signed PDFs in ``out``."""
    queue = await channel.get_queue(f"outcomes.{source}", ensure=False)
    async with queue.iterator() as messages:
        async for message in messages:
            async with message.process():  # acked once handled: an outcome is read once
                outcome = json.loads(message.body)
                ref, status = outcome["external_ref"], outcome["status"]
                if ref not in pending or status not in FINAL:
                    continue  # "accepted", or an outcome of an earlier batch
                final[ref] = status
                pending.discard(ref)
                print(ref, status, _filed(outcome, out) if status == "completed" else outcome.get("reason") or "", flush=True)
                if not pending:
                    return


def _filed(outcome: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{outcome['external_ref']}.pdf"
    path.write_bytes(base64.b64decode(outcome["pdf"]))
    signers = ", ".join(s["signer"]["name"] for s in outcome["signatures"])
    return f"{path} signed by {signers}"


async def main(pdfs: list[Path]) -> int:
    url, source = os.environ["PARAAF_SOURCE_URL"], os.environ.get("PARAAF_SOURCE", "notula")
    meeting = f"ZIT-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    bodies = [decision(pdf, f"{meeting}-{number:02d}", source) for number, pdf in enumerate(pdfs, start=1)]
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await submit(channel, connection.url.user, source, bodies)
        print(f"submitted {len(bodies)} decisions of meeting {meeting}", flush=True)
        pending, final = {body["external_ref"] for body in bodies}, {}
        try:
            async with asyncio.timeout(float(os.environ.get("PARAAF_WAIT_SECONDS", "3600"))):
                await outcomes(channel, source, pending, final, Path(os.environ.get("PARAAF_OUT", "signed")))
        except TimeoutError:
            print(f"still waiting for {len(pending)} decisions: {', '.join(sorted(pending))}", flush=True)
    signed = sum(status == "completed" for status in final.values())
    print(f"{signed} of {len(bodies)} decisions signed", flush=True)
    return 0 if signed == len(bodies) else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main([Path(arg) for arg in sys.argv[1:]])))
