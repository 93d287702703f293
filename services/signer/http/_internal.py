"""For the notifier alone (a key with the ``links`` scope): the endpoint that
makes the link a mail carries (a signing link, a download link, or the
portal's one-time sign-in link), at the moment the mail is sent."""

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from services.signer import handlers
from services.signer.domain import LinkGone, MintedLink
from services.signer.http._deps import SignerHttpDeps
from services.signer.sessions import Sessions
from services.signer.store import SignerStore
from shared.apikeys import Principal
from shared.http import require_scope

__all__ = ["LinkRequest", "internal_routes"]


class LinkRequest(BaseModel):
    """The notifier asks for the link of one mail it is about to send."""

    kind: Literal["signing", "download", "sign_in"]
    mail_id: UUID
    request_id: UUID | None = None  # signing; sign_in: the sign-in attempt
    document_id: UUID | None = None  # download
    person_id: str | None = None  # download


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

    return router
