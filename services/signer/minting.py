"""The links of many mails made at once, for the notifier's batches (``POST /internal/links/batch``): one statement
for all the signing links and one for all the download links, where one link at a time took a transaction of four
statements. The rules are those of ``handlers.mint_signing_link`` and ``handlers.mint_download_link``: a signing link
only for an open request of a document that still runs, a download link only for a person's grant, and each new
mailed link retires the earlier ones of its request (or grant), the earlier ones of the same batch included, as if
they had been made one after the other in the order asked.
"""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.signer.domain import Links, MintedLink
from services.signer.tokens import mint_token

__all__ = ["mint_download_links", "mint_signing_links"]

_SIGNING = """
WITH asked AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) WITH ORDINALITY AS a (request_id, mail_id, token_hash, n)
), open AS (
    SELECT r.request_id, r.org, r.signer->>'id' AS person_id
    FROM signer.requests r JOIN signer.documents d USING (document_id)
    WHERE r.request_id = ANY($1::uuid[]) AND r.status = 'pending' AND d.status = 'active'
), retired AS (
    UPDATE signer.tokens SET revoked_at = now()
    WHERE request_id IN (SELECT request_id FROM open) AND used_at IS NULL AND revoked_at IS NULL AND mail_id IS NOT NULL
), made AS (
    INSERT INTO signer.tokens (token_hash, request_id, person_id, expires_at, mail_id, revoked_at)
    SELECT a.token_hash, a.request_id, o.person_id, $4, a.mail_id,
           CASE WHEN a.n < max(a.n) OVER (PARTITION BY a.request_id) THEN now() END
    FROM asked a JOIN open o USING (request_id)
)
SELECT a.n, o.org FROM asked a JOIN open o USING (request_id)
"""

_DOWNLOAD = """
WITH asked AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bytea[]) WITH ORDINALITY AS a (document_id, person_id, mail_id, token_hash, n)
), retired AS (
    UPDATE signer.downloads SET revoked_at = now()
    WHERE (document_id, person_id) IN (SELECT document_id, person_id FROM asked) AND revoked_at IS NULL
), made AS (
    INSERT INTO signer.downloads (token_hash, document_id, org, person_id, pdf_sha256, filename, expires_at, mail_id, revoked_at)
    SELECT a.token_hash, g.document_id, g.org, g.person_id, g.pdf_sha256, g.filename, $5, a.mail_id,
           CASE WHEN a.n < max(a.n) OVER (PARTITION BY a.document_id, a.person_id) THEN now() END
    FROM asked a JOIN signer.download_grants g USING (document_id, person_id)
)
SELECT a.n, d.org FROM asked a JOIN signer.download_grants g USING (document_id, person_id)
LEFT JOIN signer.documents d ON d.document_id = a.document_id
"""


async def mint_signing_links(
    conn: asyncpg.Connection, asked: Sequence[tuple[UUID, UUID]], links: Links
) -> list[MintedLink | None]:
    """For each (request, mail) in order: its new link, or None when the request is not open (or its document ended)."""
    tokens = [mint_token() for _ in asked]
    expires_at = links.signing_expiry()
    rows = await conn.fetch(_SIGNING, [r for r, _ in asked], [m for _, m in asked], [h for _, h in tokens], expires_at)
    return _in_order(rows, tokens, "s", expires_at, links, len(asked))


async def mint_download_links(
    conn: asyncpg.Connection, asked: Sequence[tuple[UUID, str, UUID]], links: Links
) -> list[MintedLink | None]:
    """For each (document, person, mail) in order: a new link to the signed PDF, or None when the person has no grant."""
    tokens = [mint_token() for _ in asked]
    expires_at = links.download_expiry()
    columns = list(zip(*asked, strict=True)) if asked else [(), (), ()]
    rows = await conn.fetch(_DOWNLOAD, list(columns[0]), list(columns[1]), list(columns[2]), [h for _, h in tokens], expires_at)
    return _in_order(rows, tokens, "d", expires_at, links, len(asked))


def _in_order(
    rows: Sequence[asyncpg.Record], tokens: Sequence[tuple[str, bytes]], kind: str, expires_at: datetime, links: Links, count: int
) -> list[MintedLink | None]:
    made: list[MintedLink | None] = [None] * count
    for row in rows:
        n = row["n"] - 1  # WITH ORDINALITY counts from 1
        made[n] = MintedLink(links.url(kind, tokens[n][0], row["org"]), expires_at)
    return made
