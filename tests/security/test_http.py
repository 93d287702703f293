"""HTTP is a boundary too: the router's API answers only to an API key with the
right scope for the right org, the actor is the key, /verify cannot be made to
read or hold a huge body, and nothing internal shows."""

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.security.conftest import State, attempted, settle
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, submission

pytestmark = pytest.mark.e2e


async def _waiting_document(city: System, ref: str) -> str:
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(), external_ref=ref, title=f"Besluit {ref}"))
        return (await outcomes.wait("notula.accepted", ref))["document_id"]


async def test_the_router_api_needs_a_key_with_the_operate_scope_for_the_document_s_org(city: System) -> None:
    """Withdrawing a document or registering an absence without a key, with a bad one, with one lacking `operate`, or with
    another org's key: 401, 403 or 404, and the document stays active and no absence is added."""
    document_id = await _waiting_document(city, "API-1")
    await settle(1.0)
    before = await State.of(city)
    api_absences = await _api_absences(city)  # another module's test on this city may have registered one
    links_only = city.cli("keys", "create", "--name", "reporting", "--scopes", "links").stdout.strip()
    other_org = city.cli("keys", "create", "--name", "elsewhere", "--scopes", "operate", "--org", "othercity").stdout.strip()
    withdraw = city.url("router", f"/documents/{document_id}/withdraw")
    absence = city.url("router", "/absences")
    attempts = [
        ("POST withdraw without a key, `by` naming the submitter", withdraw, {"reason": "x", "by": "elen.elaut"}, {}, 401),
        ("POST withdraw with a made-up key", withdraw, {"reason": "x"}, {"Authorization": "Bearer paraaf_" + "A" * 43}, 401),
        ("POST withdraw with a key that lacks `operate`", withdraw, {"reason": "x"}, {"Authorization": f"Bearer {links_only}"}, 403),
        ("POST withdraw with another org's key", withdraw, {"reason": "x"}, {"Authorization": f"Bearer {other_org}"}, 404),
        ("POST /absences for the mayor without a key", absence, {"person": "bart.baert", "from": "2026-12-01", "to": "2026-12-24"}, {}, 401),
        ("GET /absences without a key", absence, None, {}, 401),
    ]
    async with httpx.AsyncClient() as client:
        for step, url, body, headers, status in attempts:
            response = await (client.post(url, json=body, headers=headers) if body is not None else client.get(url, headers=headers))
            attempted(f"router API: {step}", f"{response.status_code} {response.json()['detail']}")
            assert response.status_code == status, (step, response.text)
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT status FROM router.instances WHERE document_id = $1::uuid", document_id) == "active"
    finally:
        await conn.close()
    assert await _api_absences(city) == api_absences
    assert await State.of(city) == before


async def _api_absences(city: System) -> int:
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        return await conn.fetchval("SELECT count(*) FROM router.absences WHERE source = 'api'")
    finally:
        await conn.close()


async def test_the_actor_is_the_key_never_the_body(city: System) -> None:
    """A body claiming `by: elen.elaut` is ignored: the withdrawal is recorded as the key's name."""
    document_id = await _waiting_document(city, "API-2")
    async with Outcomes(city.amqp_url, "notula.*") as outcomes, httpx.AsyncClient() as client:
        response = await client.post(
            city.url("router", f"/documents/{document_id}/withdraw"),
            json={"reason": "duplicate", "by": "elen.elaut"},
            headers=city.operator_headers(),
        )
        assert response.status_code == 202
        withdrawn = await outcomes.wait("notula.withdrawn", "API-2")
    assert withdrawn["reason"] == "withdrawn by operator:tests-operate: duplicate"


def _signer_rss(city: System) -> tuple[int, int]:
    """(current, peak) resident memory of the signer process, in MB."""
    status = Path(f"/proc/{city.processes['signer'].pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


async def test_a_200_mb_verify_is_refused_without_being_read_or_held(city: System) -> None:
    """POST /verify with 200 MB: refused 413 on its Content-Length before the body is sent; streamed without one,
    refused once it passes the limit; the signer's memory never holds 200 MB."""
    _, peak_before = _signer_rss(city)
    host, port = urlsplit(city.public_url).hostname, urlsplit(city.public_url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/pdf\r\nContent-Length: 209715200\r\n\r\n"
        )  # and not one byte of the body
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer

    async def two_hundred_megabytes():  # noqa: ANN202
        chunk = b"%PDF-1.7\n" + b"0" * (1024 * 1024 - 9)
        for _ in range(200):
            yield chunk
            await asyncio.sleep(0)

    async with httpx.AsyncClient(timeout=120) as client:
        try:
            streamed = (await client.post(city.url("signer", "/verify"), content=two_hundred_megabytes())).status_code
        except httpx.TransportError:
            streamed = "connection closed by the server"
    current, peak_after = _signer_rss(city)
    print(f"\nsigner resident memory: peak {peak_before} MB before, {peak_after} MB after two 200 MB POST /verify; now {current} MB")
    attempted(
        "POST /verify with 200 MB (declared, then streamed without Content-Length)",
        f"413 at once; streamed: {streamed}; signer peak RSS {peak_before} -> {peak_after} MB",
    )
    assert streamed in (413, "connection closed by the server")
    assert peak_after - peak_before < 200, "the signer held the whole body"


async def test_no_openapi_pages_and_a_health_that_tells_nothing_internal(city: System) -> None:
    """/docs and /openapi.json are not served unless PARAAF_HTTP_DOCS is set; /health says only ok."""
    async with httpx.AsyncClient() as client:
        for service in ("signer", "router", "intake", "notifier", "audit"):
            for path in ("/docs", "/openapi.json", "/redoc"):
                assert (await client.get(city.url(service, path))).status_code == 404, (service, path)
            assert (await client.get(city.url(service, "/health"))).json() == {"service": service, "status": "ok"}
