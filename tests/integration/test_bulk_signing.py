"""Bulk signing's rules over the portal's HTTP, in the seeded city of the
visibility tests (tests/support/city.py): a selection holds only requests
that wait for her and that she may read, a first page is shown only of
those, sending the confirmation twice is one run, and a run is hers alone."""

import re
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from services.signer.bulk import hold_run, release_run, run_going_on
from services.signer.http._portal_auth import SESSION_COOKIE
from tests.support.city import City, seed_city
from tests.support.portal import csrf_on
from tests.support.signer_harness import SignerHarness
from tests.support.waiting import eventually

_RUN = re.compile(r'name="run" value="([0-9a-f-]{36})"')


def as_person(signer: SignerHarness, city: City, person: str) -> httpx.AsyncClient:
    signer.client.cookies.clear()
    signer.client.cookies.set(SESSION_COOKIE, city.sessions[person], domain="signer.test", path="/p")
    return signer.client


async def test_a_selection_holds_only_what_waits_for_her_and_she_may_read_and_one_confirmation_is_one_run(
    signer: SignerHarness,
) -> None:
    """Ann may not tick the shielded file she was asked from outside its group (nor see its first page); her review R
    signs in a run that a second send of the same confirmation does not repeat; Bart cannot open her run."""
    city = await seed_city(signer)
    shielded, review = city.requests[("T", "ann")], city.requests[("R", "ann")]
    ann = as_person(signer, city, "ann")
    listing = await ann.get("/p/to-sign")
    assert str(review) in listing.text and str(shielded) not in listing.text
    assert (await ann.get(f"/p/requests/{shielded}/first-page.png")).status_code == 404
    picture = await ann.get(f"/p/requests/{review}/first-page.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")

    csrf = csrf_on(listing)
    refused = await ann.post("/p/bulk/review", data={"csrf": csrf, "request": [str(review), str(shielded)]})
    assert refused.status_code == 422 and "wachten niet meer op u" in refused.text
    empty = await ann.post("/p/bulk/review", data={"csrf": csrf})
    assert empty.status_code == 422 and "Vink eerst minstens één document aan" in empty.text
    forged = await ann.post("/p/bulk/review", data={"csrf": "0" * 64, "request": [str(review)]})
    assert forged.status_code == 403

    confirm = await ann.post("/p/bulk/review", data={"csrf": csrf, "request": [str(review)]})
    assert confirm.status_code == 200 and "Evaluatieverslag Karel 2026" in confirm.text
    run = _RUN.search(confirm.text)
    assert run is not None
    form = {"csrf": csrf_on(confirm), "run": run.group(1), "request": [str(review)]}
    first, again = await ann.post("/p/bulk", data=form), await ann.post("/p/bulk", data=form)
    assert first.status_code == again.status_code == 303 and first.headers["location"] == again.headers["location"]

    async def finished() -> dict[str, Any] | None:
        state = (await ann.get(first.headers["location"] + "/progress")).json()
        return state if state["finished"] else None

    state = await eventually(finished, "the run over")
    assert (state["count"], state["signed"]) == (1, 1)
    signed = await signer.published("signature.signed")
    assert [s["request_id"] for s in signed] == [str(review)], "one signature, one event"
    assert (await signer.document(city.documents["R"]))[0] == 1

    bart = as_person(signer, city, "bart")
    assert (await bart.get(first.headers["location"])).status_code == 404
    assert (await bart.get(first.headers["location"] + "/progress")).status_code == 404


async def test_every_signer_process_tells_a_run_going_on_from_one_cut_off(database_url: str) -> None:
    """A run is going on, for any process of the signer that is asked (the progress page may reach any of them),
    while the process running it holds its lease; it is over once that process lets go, or dies."""
    run_id = uuid4()
    running, asked = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        assert not await run_going_on(asked, run_id)
        await hold_run(running, run_id)
        assert await run_going_on(asked, run_id) and await run_going_on(asked, run_id)  # asking takes nothing away
        await release_run(running, run_id)
        assert not await run_going_on(asked, run_id)
        await hold_run(running, run_id)
        running.terminate()  # the process running it died
        await eventually(lambda: _over(asked, run_id), "the run seen as cut off")
    finally:
        await asked.close()
        if not running.is_closed():
            await running.close()


async def _over(conn: asyncpg.Connection, run_id: UUID) -> bool:
    return not await run_going_on(conn, run_id)
