"""For the notifier alone (a key with the ``links`` scope): the endpoints that
make the link a mail carries (a signing link, a download link, or the
portal's one-time sign-in link), at the moment the mail is sent: one mail's
link, or the links of the mails the notifier sends together, made in one
transaction with the key checked once (minting.py)."""

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from services.signer import handlers
from services.signer.domain import LinkGone, MintedLink
from services.signer.http._deps import SignerHttpDeps
from services.signer.minting import mint_download_links, mint_signing_links
from services.signer.sessions import Sessions
from services.signer.store import SignerStore
from shared.apikeys import Principal
from shared.http import require_scope

__all__ = ["LinkBatch", "LinkRequest", "internal_routes"]


class LinkRequest(BaseModel):
    """The notifier asks for the link of one mail it is about to send."""

    kind: Literal["signing", "download", "sign_in"]
    mail_id: UUID
    request_id: UUID | None = None  # signing; sign_in: the sign-in attempt
    document_id: UUID | None = None  # download
    person_id: str | None = None  # download

    @property
    def complete(self) -> bool:
        if self.kind == "download":
            return self.document_id is not None and bool(self.person_id)
        return self.request_id is not None


class LinkBatch(BaseModel):
    """The notifier asks for the links of the mails it is about to send together."""

    links: list[LinkRequest] = Field(min_length=1, max_length=500)


async def _mint(store: SignerStore, body: LinkRequest, deps: SignerHttpDeps) -> MintedLink:
    if body.kind == "signing" and body.request_id is not None:
        return await handlers.mint_signing_link(store, body.request_id, body.mail_id, links=deps.links)
    if body.kind == "download" and body.document_id is not None and body.person_id:
        return await handlers.mint_download_link(store, body.document_id, body.person_id, body.mail_id, links=deps.links)
    raise HTTPException(422, "a signing or sign-in link needs request_id; a download link document_id and person_id")


async def _sign_in_link(deps: SignerHttpDeps, body: LinkRequest) -> MintedLink:
    if body.request_id is None:
        raise HTTPException(422, "a sign-in link needs request_id (the sign-in attempt)")
    async with deps.pool().acquire() as conn, conn.transaction():
        made = await Sessions(conn).mint_sign_in(body.request_id, deps.now())
    if made is None:
        raise LinkGone(f"sign-in attempt {body.request_id} is unknown, used or too old")
    return MintedLink(deps.links.url("p/sign-in", made[0], made[2]), made[1])


async def _mint_batch(conn: asyncpg.Connection, asked: Sequence[LinkRequest], deps: SignerHttpDeps) -> list[MintedLink | None]:
    """Each asked link in order, None where none is made; the signing and the download links each in one statement."""
    made: list[MintedLink | None] = [None] * len(asked)
    signing = [i for i, a in enumerate(asked) if a.kind == "signing"]
    download = [i for i, a in enumerate(asked) if a.kind == "download"]
    if signing:
        pairs = [(asked[i].request_id, asked[i].mail_id) for i in signing]
        _place(made, signing, await mint_signing_links(conn, pairs, deps.links))  # type: ignore[arg-type]
    if download:
        triples = [(asked[i].document_id, asked[i].person_id, asked[i].mail_id) for i in download]
        _place(made, download, await mint_download_links(conn, triples, deps.links))  # type: ignore[arg-type]
    for i, a in enumerate(asked):
        if a.kind == "sign_in" and a.request_id is not None:
            made[i] = await _sign_in(Sessions(conn), a.request_id, deps)
    return made


def _place(made: list[MintedLink | None], at: Sequence[int], links: Sequence[MintedLink | None]) -> None:
    for i, link in zip(at, links, strict=True):
        made[i] = link


async def _sign_in(sessions: Sessions, attempt: UUID, deps: SignerHttpDeps) -> MintedLink | None:
    made = await sessions.mint_sign_in(attempt, deps.now())
    return MintedLink(deps.links.url("p/sign-in", made[0], made[2]), made[1]) if made else None


def _answer(asked: LinkRequest, link: MintedLink | None) -> dict:
    if link is not None:
        return {"url": link.url, "expires_at": link.expires_at.isoformat()}
    if asked.kind == "signing":
        return {"gone": f"request {asked.request_id} is not open"}
    if asked.kind == "download":
        return {"gone": f"{asked.person_id} may not download document {asked.document_id}"}
    return {"gone": f"sign-in attempt {asked.request_id} is unknown, used or too old"}


def internal_routes(deps: SignerHttpDeps) -> APIRouter:
    router = APIRouter(tags=["internal"])

    @router.post("/internal/links", status_code=201)
    async def make_link(body: LinkRequest, key: Principal = require_scope(deps.pool, "links")) -> dict:
        """For the notifier: the link for one mail, made now (earlier links of the same request stop working)."""
        try:
            if body.kind == "sign_in":
                made = await _sign_in_link(deps, body)
            else:
                async with deps.store() as store:
                    made = await _mint(store, body, deps)
        except LinkGone as gone:
            raise HTTPException(410, str(gone)) from None
        return {"url": made.url, "expires_at": made.expires_at.isoformat()}

    @router.post("/internal/links/batch")
    async def make_links(body: LinkBatch, key: Principal = require_scope(deps.pool, "links")) -> dict:
        """For the notifier: the links of the mails it sends together, made now in one transaction, answered in the
        order asked; ``gone`` in place of a link the signer will not make (closed request, no grant, used attempt)."""
        if not all(asked.complete for asked in body.links):
            raise HTTPException(422, "a signing or sign-in link needs request_id; a download link document_id and person_id")
        async with deps.pool().acquire() as conn:
            if len({asked.kind for asked in body.links}) == 1 and body.links[0].kind != "sign_in":
                made = await _mint_batch(conn, body.links, deps)  # one statement: atomic without BEGIN and COMMIT
            else:
                async with conn.transaction():
                    made = await _mint_batch(conn, body.links, deps)
        return {"links": [_answer(asked, link) for asked, link in zip(body.links, made, strict=True)]}

    return router
