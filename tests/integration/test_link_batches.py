"""The signer's ``POST /internal/links/batch`` on a real database: the links of the mails the notifier sends together,
each as one call of ``POST /internal/links`` would have made it, in the order asked; only for the notifier's key."""

from typing import Any
from uuid import UUID, uuid4

import httpx

from services.signer.tokens import hash_token
from shared import apikeys
from shared.events import PersonRef
from tests.support.pdfs import make_pdf
from tests.support.signer_harness import SignerHarness

ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann@x.be", title="algemeen directeur")
BART = PersonRef(id="bart.baert", name="Bart Baert", email="bart@x.be", title="burgemeester")


def signing(request_id: UUID) -> dict[str, str]:
    return {"kind": "signing", "request_id": str(request_id), "mail_id": str(uuid4())}


async def batch(signer: SignerHarness, *asked: dict[str, str], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {signer.links_key if key is None else key}"} if key != "" else {}
    return await signer.client.post("/internal/links/batch", json={"links": list(asked)}, headers=headers)


async def links(signer: SignerHarness, *asked: dict[str, str]) -> list[dict[str, Any]]:
    answer = await batch(signer, *asked)
    assert answer.status_code == 200, answer.text
    return answer.json()["links"]


def path(answer: dict[str, Any]) -> str:
    return httpx.URL(answer["url"]).path


async def test_each_link_is_answered_in_the_order_asked_and_a_closed_request_gets_none(signer: SignerHarness) -> None:
    """An open request gets a link that opens its page; a signed one and an ungranted download get `gone`, in place."""
    request_id, _ = await signer.request(await signer.new_document(make_pdf()), ANN)
    closed_id, closed_link = await signer.request(await signer.new_document(make_pdf()), BART)
    await signer.sign(closed_link)
    download = {"kind": "download", "document_id": str(uuid4()), "person_id": "ann.aerts", "mail_id": str(uuid4())}
    made = await links(signer, signing(closed_id), signing(request_id), download)
    assert made[0] == {"gone": f"request {closed_id} is not open"} and "gone" in made[2]
    assert (await signer.sign(path(made[1]))).status_code == 200


async def test_two_mails_of_one_request_in_a_batch_leave_only_the_later_link_working(signer: SignerHarness) -> None:
    """As if made one after the other: the request's earlier mailed link and the batch's first answer 410; the second signs."""
    request_id, mailed = await signer.request(await signer.new_document(make_pdf()), ANN)
    first, second = await links(signer, signing(request_id), signing(request_id))
    assert (await signer.client.get(mailed)).status_code == 410
    assert (await signer.client.get(path(first))).status_code == 410
    assert (await signer.sign(path(second))).status_code == 200


async def test_a_download_link_needs_a_grant_and_the_batch_s_later_one_retires_the_earlier(signer: SignerHarness) -> None:
    """With a grant each asked download link is made, for the mail it was asked for; the earlier one is revoked."""
    document_id = uuid4()
    await signer.in_store(
        lambda store: store.grant_download(
            document_id=document_id, org="default", person_id="elen", pdf_sha256="e" * 64, filename="b.pdf"
        )
    )
    asked = [
        {"kind": "download", "document_id": str(document_id), "person_id": "elen", "mail_id": str(uuid4())} for _ in range(2)
    ]
    made = await links(signer, *asked)
    rows = [
        await signer.pool.fetchrow(
            "SELECT mail_id, revoked_at FROM signer.downloads WHERE token_hash = $1", hash_token(path(m).rpartition("/")[2])
        )
        for m in made
    ]
    assert [str(r["mail_id"]) for r in rows] == [a["mail_id"] for a in asked]
    assert rows[0]["revoked_at"] is not None and rows[1]["revoked_at"] is None


async def test_the_batch_answers_only_a_live_key_with_the_links_scope(signer: SignerHarness) -> None:
    """No key: 401; a key without the `links` scope: 403; the notifier's key once revoked: 401, and no link is made."""
    request_id, _ = await signer.request(await signer.new_document(make_pdf()), ANN)
    async with signer.pool.acquire() as conn:
        _, operator = await apikeys.create_key(conn, org="default", name="ops", scopes=["operate"])
        _, notifier = await apikeys.create_key(conn, org="*", name="notifier", scopes=["links"])
    assert (await batch(signer, signing(request_id), key="")).status_code == 401
    assert (await batch(signer, signing(request_id), key=operator)).status_code == 403
    assert (await batch(signer, signing(request_id), key=notifier)).status_code == 200
    async with signer.pool.acquire() as conn:
        assert await apikeys.revoke_key(conn, org="*", name="notifier")
    tokens = await signer.pool.fetchval("SELECT count(*) FROM signer.tokens")
    assert (await batch(signer, signing(request_id), key=notifier)).status_code == 401
    assert await signer.pool.fetchval("SELECT count(*) FROM signer.tokens") == tokens
