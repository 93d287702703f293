"""A bulk-signing session against the one-by-one way, in the same run: the demo
city in July (every service its own process), 40 decisions waiting for Sofie
Smet (26 her own, 14 as the mayor's substitute), signed from the portal over
HTTP as her browser does.

* **bulk session** (the figure with a goal, ≤ 30 s for 40): open "To sign",
  look at one first page, tick all 40 and review, confirm, follow the progress
  (polling as the page does, every 0.5 s) until the run is over, and open the
  summary. Printed with its breakdown: each step's time, and within the run
  the time from the first to the last document signed.
* **baseline, one by one**: 40 more decisions of the same kinds, each opened from
  "To sign" (``/p/requests/<id>`` → the signing page) and signed with its own
  button press, one after the other, as before bulk signing existed.

Run: ``python -m bench.bulk``. Needs PostgreSQL and RabbitMQ as the tests do.
"""

import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx

from tests.conftest import LOCAL_AMQP, LOCAL_DATABASE, Infra, VhostAdmin, _remove_session_accounts, city_on_fresh_install
from tests.support.pdfs import make_pdf
from tests.support.portal import csrf_on, sign_in_by_mail
from tests.support.system import System, submission

__all__ = ["main"]

GOAL_SECONDS = 30.0
SOFIE = "sofie.smet@demo.paraaf.be"
TENTH_OF_JULY = "2026-07-10T09:00:00+02:00"
_REQUEST = re.compile(r'name="request" value="([0-9a-f-]{36})"')
_RUN = re.compile(r'name="run" value="([0-9a-f-]{36})"')
T = TypeVar("T")


async def _timed(into: dict[str, float], name: str, step: Callable[[], Awaitable[T]]) -> T:
    started = time.perf_counter()
    result = await step()
    into[name] = time.perf_counter() - started
    return result


async def _waiting(system: System, count: int) -> None:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 180
        while await conn.fetchval(
            "SELECT count(*) FROM signer.requests r JOIN signer.documents d USING (document_id)"
            " WHERE r.signer->>'id' = 'sofie.smet' AND r.status = 'pending' AND d.status = 'active'"
        ) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} requests did not reach Sofie Smet within 180 s")
            await asyncio.sleep(0.3)
    finally:
        await conn.close()


async def _forty(system: System, batch: str) -> None:
    pdf = make_pdf(pages=2)
    bodies = []
    for n in range(40):
        signers = ["person:sofie.smet"] if n < 26 else ["role:burgemeester"]
        body = submission(pdf, external_ref=f"{batch}-{n:02d}", title=f"{batch} besluit {n:02d}", steps=[{"action": "sign", "signers": signers}])
        del body["flow"]
        bodies.append(body)
    await system.publish_many(bodies)
    await _waiting(system, 40)


async def bulk_session(client: httpx.AsyncClient) -> dict[str, float]:
    """Sofie's session, step by step; the seconds of each."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    listing = await _timed(steps, "open To sign (40 listed)", lambda: client.get("/p/to-sign"))
    chosen = _REQUEST.findall(listing.text)
    assert len(chosen) == 40, f"{len(chosen)} listed"
    picture = await _timed(steps, "look at one first page", lambda: client.get(f"/p/requests/{chosen[0]}/first-page.png"))
    assert picture.status_code == 200, picture.status_code
    review = await _timed(steps, "review the 40 ticked", lambda: client.post(
        "/p/bulk/review", data={"csrf": csrf_on(listing), "request": chosen}))
    run = _RUN.search(review.text)
    assert run is not None, review.text[:500]
    started_run = await _timed(steps, "confirm (the run starts)", lambda: client.post(
        "/p/bulk", data={"csrf": csrf_on(review), "run": run.group(1), "request": chosen}))
    assert started_run.status_code == 303, started_run.text[:500]
    run_url = started_run.headers["location"]

    async def follow() -> dict[str, Any]:
        while True:
            state = (await client.get(run_url + "/progress")).json()
            if state["finished"]:
                return state
            await asyncio.sleep(0.5)

    state = await _timed(steps, "the run, followed until over", follow)
    assert state["signed"] == 40, state
    summary = await _timed(steps, "open the summary", lambda: client.get(run_url))
    assert "Klaar: 40 van 40 ondertekend." in summary.text
    steps["whole session"] = time.perf_counter() - started
    return steps


async def one_by_one(client: httpx.AsyncClient) -> float:
    """The same number signed as before: each opened from "To sign" and signed with its own press."""
    started = time.perf_counter()
    listing = await client.get("/p/to-sign")
    for request_id in _REQUEST.findall(listing.text):
        page = await client.get(f"/p/requests/{request_id}", follow_redirects=True)
        signed = await client.post(str(page.url) + "/sign", data={"csrf": csrf_on(page)})
        assert signed.status_code == 200, signed.text[:500]
    return time.perf_counter() - started


async def _run_spread(system: System) -> float:
    """Within the run: first to last document decided."""
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        return await conn.fetchval("SELECT extract(epoch FROM max(decided_at) - min(decided_at)) FROM signer.bulk_items")
    finally:
        await conn.close()


async def run(infra: Infra) -> None:
    with tempfile.TemporaryDirectory() as secrets:
        async with city_on_fresh_install(infra, secrets, "bench-bulk", PARAAF_CLOCK_START=TENTH_OF_JULY) as system:
            client = await sign_in_by_mail(system.public_url, system.smtp, SOFIE)  # type: ignore[attr-defined]
            try:
                await _forty(system, "BULK")
                steps = await bulk_session(client)
                spread = await _run_spread(system)
                await _forty(system, "SINGLE")
                baseline = await one_by_one(client)
            finally:
                await client.aclose()
    whole = steps.pop("whole session")
    print(f"bulk session, 40 documents (26 own, 14 for the mayor): {whole:.1f} s (goal ≤ {GOAL_SECONDS:.0f} s)"
          f" {'OK' if whole <= GOAL_SECONDS else 'OVER'}")
    for name, seconds in steps.items():
        print(f"  {name:<34} {seconds:6.2f} s")
    print(f"  {'(in the run: first to last signed)':<34} {spread:6.2f} s")
    print(f"baseline, the same 40 opened and signed one by one: {baseline:.1f} s")
    print(f"ratio bulk session / one by one: {whole / baseline:.2f}")


def main(argv: list[str] | None = None) -> None:
    _ = sys.argv[1:] if argv is None else argv
    infra = Infra(LOCAL_AMQP, LOCAL_DATABASE, VhostAdmin(LOCAL_AMQP))
    try:
        asyncio.run(run(infra))
    finally:
        _remove_session_accounts(infra)


if __name__ == "__main__":
    main()
