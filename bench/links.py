"""The signer's link API: CPU a link made one call each (``POST /internal/links``) against links made in batches
(``POST /internal/links/batch``, as the notifier asks for the mails it sends together), on a fresh database.

    python -m bench.links [LINKS]

The signer's HTTP app runs in this process (over ASGI, no server), so the Python figure is the app's and the
client's CPU together; the PostgreSQL figure is its backends' for this database (from /proc). Rounds alternate
(one call a link, then batches of 1, 2, 4 and 8, twice) so that a noisy machine weighs on all of them alike:
read the ratios.
"""

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable

import asyncpg

from bench.scratch import scratch_database
from tests.support.signer_harness import SignerHarness

ANN = {"id": "ann", "name": "Ann", "email": "ann@x.be"}


async def _backends_cpu(pool: asyncpg.Pool) -> float:
    """CPU seconds of this database's backends so far."""
    total = 0
    for row in await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"):
        try:
            fields = open(f"/proc/{row['pid']}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _open_requests(signer: SignerHarness, count: int) -> list[uuid.UUID]:
    requests = [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
    await signer.pool.executemany(
        "INSERT INTO signer.documents (document_id, org, pdf_sha256) VALUES ($1, 'default', 'x')", [(d,) for d, _ in requests]
    )
    await signer.pool.executemany(
        "INSERT INTO signer.requests (request_id, document_id, org, step, step_count, action, signer, title, filename,"
        " submitted_by) VALUES ($2, $1, 'default', 1, 1, 'sign', $3, 't', 'f.pdf', $3)",
        [(d, r, ANN) for d, r in requests],
    )
    return [r for _, r in requests]


def _asked(request_id: uuid.UUID) -> dict[str, str]:
    return {"kind": "signing", "request_id": str(request_id), "mail_id": str(uuid.uuid4())}


async def _round(signer: SignerHarness, requests: list[uuid.UUID], batch: int | None) -> tuple[float, float]:
    """(Python, PostgreSQL) CPU ms a link; ``batch`` None: one call a link."""
    headers = {"Authorization": f"Bearer {signer.links_key}"}
    backends, started = await _backends_cpu(signer.pool), time.process_time()
    if batch is None:
        for request_id in requests:
            answer = await signer.client.post("/internal/links", json=_asked(request_id), headers=headers)
            assert answer.status_code == 201, answer.text
    else:
        for i in range(0, len(requests), batch):
            body = {"links": [_asked(r) for r in requests[i : i + batch]]}
            answer = await signer.client.post("/internal/links/batch", json=body, headers=headers)
            assert answer.status_code == 200 and all("url" in a for a in answer.json()["links"]), answer.text
    python, postgres = time.process_time() - started, await _backends_cpu(signer.pool) - backends
    return 1000 * python / len(requests), 1000 * postgres / len(requests)


async def _measure(url: str, count: int, say: Callable[[str], None]) -> None:
    async with SignerHarness(url, None, None) as signer:  # type: ignore[arg-type]  # no page is signed or drawn
        requests = await _open_requests(signer, count)
        await _round(signer, requests[:10], None)  # warm: statements prepared, routes compiled
        await _round(signer, requests[:10], 4)
        for _ in range(2):
            for batch in (None, 1, 2, 4, 8):
                python, postgres = await _round(signer, requests, batch)
                label = "one call a link " if batch is None else f"batches of {batch}    "
                say(f"  {label}  Python {python:6.3f} ms/link   PostgreSQL {postgres:6.3f} ms/link")


async def main(count: int = 400) -> None:
    async with scratch_database("links") as url:
        print(f"{count} signing links a round, load average {os.getloadavg()[0]:.1f}:")
        await _measure(url, count, print)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 400))
