"""The signer's tables behind one interface, :class:`SignerStore`: documents being
signed, requests and their link tokens, download grants and links, the PDFs
(the blob store it shares with intake), the directory it reads from the
router, and the keys it signs with. :class:`PostgresSignerStore` keeps them
in PostgreSQL, inside the caller's transaction; tests use an in-memory fake
of the same interface (tests/support/fakes/signer.py)."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from services.signer import check
from services.signer.domain import DirectoryPerson, Download, SignerDocument, SigningLink, SigningRequest
from services.signer.keys import CERTIFICATE_COLUMNS, CERTIFICATE_JOIN, Credentials, Keyring, certificate_row
from services.signer.pades import Placeholder
from services.signer.portal import LINK_POLICY_COLUMNS, LINK_POLICY_JOINS, link_policy
from services.signer.recent import RecentBlobs
from shared import blobs
from shared.events import PersonRef
from shared.messaging import Outbox, TransactionStore

__all__ = ["PostgresSignerStore", "RequestFacts", "SignerStore"]


class SignerStore(Protocol):
    async def publish(self, message: BaseModel) -> None: ...

    # What others keep: intake's PDFs, the router's directory.
    async def version_digests(self, document_id: UUID, org: str) -> list[str]: ...
    async def blob(self, digest: str) -> bytes: ...
    async def put_blob(self, data: bytes) -> str: ...
    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None: ...
    async def put_version(self, document_id: UUID, revision: int, org: str, data: bytes) -> str: ...
    async def directory_person(self, org: str, person_id: str) -> DirectoryPerson | None: ...
    async def held_titles(self, org: str, person_id: str) -> set[str]: ...
    async def request_facts(
        self, org: str, document_id: UUID, person_ids: Sequence[str], *, titles_of: str | None = None
    ) -> "RequestFacts": ...
    async def credentials(self, org: str, person: PersonRef) -> Credentials: ...
    async def prepare_credentials(self, org: str, person: PersonRef) -> None: ...
    async def authority_certificate(self, org: str) -> str: ...
    async def crl(self, org: str) -> bytes: ...

    # Documents and requests.
    async def begin_document(self, document_id: UUID, org: str, original: str) -> SignerDocument: ...
    async def document(self, document_id: UUID) -> SignerDocument | None: ...
    async def placeholders_unknown(self, document_id: UUID) -> bool: ...
    async def save_placeholders(self, document_id: UUID, placeholders: Sequence[Placeholder]) -> None: ...
    async def end_document(self, document_id: UUID, status: str) -> None: ...
    async def insert_request(self, request: SigningRequest) -> None: ...
    async def begin_request(self, request: SigningRequest, original: str) -> SignerDocument: ...
    async def request(self, request_id: UUID) -> SigningRequest | None: ...
    async def readdress(self, request_id: UUID, signer: PersonRef) -> None: ...
    async def document_filename(self, document_id: UUID) -> str | None: ...
    async def signed_before(self, document_id: UUID) -> list[SigningRequest]: ...
    async def cancel_pending(
        self, *, document_id: UUID | None = None, request_id: UUID | None = None, status: str = "cancelled", reason: str
    ) -> None: ...
    async def record_signature(
        self, link: SigningLink, *, pdf: bytes, revision: int, placeholders: Sequence[Placeholder], field_name: str, at: datetime
    ) -> str: ...
    async def mark_decided(self, link: SigningLink, *, status: str, at: datetime, reason: str | None = None) -> None: ...
    async def register_verification_code(self, document_id: UUID, org: str, code: str, secret_hash: bytes) -> bool: ...
    async def forget_verification_code(self, document_id: UUID) -> None: ...

    # Links.
    async def insert_token(self, token_hash: bytes, request_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID) -> None: ...
    async def find_link(self, token_hash: bytes, *, lock: bool = False) -> SigningLink | None: ...
    async def find_link_and_signed(self, token_hash: bytes) -> tuple[SigningLink | None, list[SigningRequest]]: ...
    async def revoke_links_of_mail(self, mail_id: UUID) -> None: ...
    async def grant_download(
        self, *, document_id: UUID, org: str, person_id: str, pdf_sha256: str, filename: str | None = None
    ) -> None: ...
    async def insert_download(
        self, token_hash: bytes, *, document_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID
    ) -> bool: ...
    async def find_download(self, token_hash: bytes) -> Download | None: ...


class RequestFacts(NamedTuple):
    """What :func:`~services.signer.domain.check_request` weighs: the document's versions (revision 0 first), the
    people asked about as the directory has them (None: not in it), and the role titles one of them holds."""

    versions: list[str]
    people: dict[str, DirectoryPerson | None]
    titles: set[str]


def _placeholders_json(placeholders: Sequence[Placeholder]) -> list[dict]:
    return [{"number": p.number, "page": p.page, "box": list(p.box)} for p in placeholders]


def _placeholders(stored: list[dict] | None) -> tuple[Placeholder, ...] | None:
    if stored is None:
        return None
    return tuple(Placeholder(p["number"], p["page"], tuple(p["box"])) for p in stored)


def _person(stored: dict | None) -> PersonRef | None:
    return PersonRef.model_validate(stored) if stored else None


def _request(row: Mapping[str, Any]) -> SigningRequest:
    return SigningRequest(
        request_id=row["request_id"], document_id=row["document_id"], org=row["org"], step=row["step"],
        step_count=row["step_count"], action=row["action"], signer=PersonRef.model_validate(row["signer"]),
        on_behalf_of=_person(row["on_behalf_of"]), title=row["title"], filename=row["filename"],
        submitted_by=PersonRef.model_validate(row["submitted_by"]), confidential=row["confidential"],
        signature_count=row["signature_count"], status=row["status"], status_reason=row["status_reason"],
        field_name=row["field_name"], decided_at=row["decided_at"],
    )


def _document(row: asyncpg.Record, prefix: str = "") -> SignerDocument:
    return SignerDocument(
        document_id=row["document_id"], org=row["org"], pdf_sha256=row[f"{prefix}pdf_sha256"],
        revision=row[f"{prefix}revision"], status=row[f"{prefix}status"],
        placeholders=_placeholders(row[f"{prefix}placeholders"]),
    )


def _link(row: asyncpg.Record) -> SigningLink:
    return SigningLink(
        token_hash=row["token_hash"], person_id=row["person_id"], expires_at=row["expires_at"],
        request=_request(row), document=_document(row, "document_"), used_at=row["used_at"],
        revoked_at=row["revoked_at"], open_steps=tuple(row["open_steps"]), policy=link_policy(row),
    )


def _download(row: asyncpg.Record) -> Download:
    return Download(
        token_hash=row["token_hash"], document_id=row["document_id"], org=row["org"], person_id=row["person_id"],
        pdf_sha256=row["pdf_sha256"], filename=row["filename"], expires_at=row["expires_at"], revoked_at=row["revoked_at"],
    )


def _find_link_sql(more: str = "", joins: str = "", lock: bool = False) -> str:
    return (
        "SELECT t.token_hash, t.expires_at, t.used_at, t.revoked_at, t.person_id, r.*, d.status AS document_status,"
        " d.pdf_sha256 AS document_pdf_sha256, d.revision AS document_revision,"
        " d.placeholders AS document_placeholders,"
        " ARRAY(SELECT e.step FROM signer.requests e WHERE e.document_id = r.document_id"
        "       AND e.status = 'pending') AS open_steps, " + LINK_POLICY_COLUMNS + more +
        " FROM signer.tokens t JOIN signer.requests r USING (request_id) JOIN signer.documents d USING (document_id)"
        + LINK_POLICY_JOINS + joins + " WHERE t.token_hash = $1" + (" FOR UPDATE OF t, r, d" if lock else "")
    )


# The locked link is the one about to sign: its signer's certificate row comes with it (see credentials).
_FIND_LINK, _FIND_LOCKED_LINK = _find_link_sql(), _find_link_sql(CERTIFICATE_COLUMNS, CERTIFICATE_JOIN, lock=True)
_FIND_LINK_AND_SIGNED = _find_link_sql(  # as JSON: asyncpg decodes no composite type with a jsonb column
    ", (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.decided_at), '[]') FROM signer.requests s"
    "   WHERE s.document_id = r.document_id AND s.status = 'signed') AS signed_before"
)


def _request_from_json(stored: dict) -> SigningRequest:
    """A request as ``to_jsonb`` gives its row: ids and times as text."""
    decided_at = stored["decided_at"]
    return _request({
        **stored, "request_id": UUID(stored["request_id"]), "document_id": UUID(stored["document_id"]),
        "decided_at": datetime.fromisoformat(decided_at) if decided_at else None,
    })


class PostgresSignerStore(TransactionStore):
    """The signer's schema (and what it may read of others'), through the connection of one transaction.
    ``recent``: the PDFs the process keeps at hand (shared by its stores), read before the database."""

    def __init__(
        self, conn: asyncpg.Connection, outbox: Outbox, keyring: Keyring | None = None, recent: RecentBlobs | None = None
    ) -> None:
        super().__init__(conn, outbox)
        self._keyring = keyring
        self._recent = recent if recent is not None else RecentBlobs(0)
        self._begun: set[UUID] = set()  # documents this transaction began (their rows locked by the insert)
        # Certificate rows read with a locked link, by (org, person, title), for the signature's credentials.
        self._certificates: dict[tuple[str, str, str], dict[str, str] | None] = {}

    # What others keep.

    async def version_digests(self, document_id: UUID, org: str) -> list[str]:
        return await blobs.version_digests(self._conn, document_id, org)

    async def blob(self, digest: str) -> bytes:
        if (kept := self._recent.get(digest)) is not None:
            return kept
        data = await blobs.get_blob(self._conn, digest)
        self._recent.keep(digest, data)
        return data

    async def put_blob(self, data: bytes) -> str:
        digest = await blobs.put_blob(self._conn, data)
        self._recent.keep(digest, data)  # should this transaction roll back, the bytes are still those of ``digest``
        return digest

    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None:
        await blobs.register_version(self._conn, document_id, revision, org, digest)

    async def put_version(self, document_id: UUID, revision: int, org: str, data: bytes) -> str:
        """:meth:`put_blob` and :meth:`register_version` in one statement (the version's reference to its blob is
        checked at the statement's end, when the blob is there); returns the digest."""
        digest = blobs.sha256_hex(data)
        await self._conn.execute(
            "WITH blob AS (INSERT INTO blobs.blob (sha256, size, data) VALUES ($4, $5, $6) ON CONFLICT DO NOTHING)"
            " INSERT INTO blobs.versions (document_id, revision, org, sha256) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            document_id, revision, org, digest, len(data), data,
        )
        self._recent.keep(digest, data)
        return digest

    async def directory_person(self, org: str, person_id: str) -> DirectoryPerson | None:
        """The person as the router's directory has them (the signer may read people and roles)."""
        row = await self._conn.fetchrow("SELECT id, name, email FROM router.people WHERE org = $1 AND id = $2", org, person_id)
        return DirectoryPerson(row["id"], row["name"], row["email"]) if row else None

    async def held_titles(self, org: str, person_id: str) -> set[str]:
        rows = await self._conn.fetch("SELECT title FROM router.roles WHERE org = $1 AND $2 = ANY(holders)", org, person_id)
        return {r["title"] for r in rows}

    async def request_facts(
        self, org: str, document_id: UUID, person_ids: Sequence[str], *, titles_of: str | None = None
    ) -> "RequestFacts":
        """What a request is checked against, in one statement: the document's :meth:`version_digests`, the
        :meth:`directory_person` of each of ``person_ids``, and the :meth:`held_titles` of ``titles_of`` (one of
        them; the titles of someone not in the directory are not read: nobody asks them of her)."""
        rows = await self._conn.fetch(
            "SELECT ARRAY(SELECT v.sha256 FROM blobs.versions v WHERE v.document_id = $4 AND v.org = $1"
            "   ORDER BY v.revision) AS versions, p.id, p.name, p.email,"
            " CASE WHEN p.id = $3 THEN ARRAY(SELECT r.title FROM router.roles r WHERE r.org = $1 AND p.id = ANY(r.holders))"
            "   END AS titles"
            " FROM (SELECT) one LEFT JOIN router.people p ON p.org = $1 AND p.id = ANY($2::text[])",
            org, list(person_ids), titles_of, document_id,
        )
        facts = RequestFacts(list(rows[0]["versions"]), dict.fromkeys(person_ids), set())
        for row in rows:
            if row["id"] is not None:
                facts.people[row["id"]] = DirectoryPerson(row["id"], row["name"], row["email"])
                facts.titles.update(row["titles"] or ())
        return facts

    async def credentials(self, org: str, person: PersonRef) -> Credentials:
        """The person's signing key and certificate, issued the first time they are asked for. Her certificate row
        read with her locked link (in this transaction, the statement before) is not read again."""
        key = (org, person.id, person.title)
        if key in self._certificates:
            return await self._keys().credentials(self._conn, org, person, stored=self._certificates.pop(key))
        return await self._keys().credentials(self._conn, org, person)

    async def prepare_credentials(self, org: str, person: PersonRef) -> None:
        """:meth:`credentials` made ahead of the person's signature, unless this process handed hers out already
        (a signature reads them anew, and issues new ones should they have been revoked since)."""
        if not self._keys().handed_out(org, person):
            await self.credentials(org, person)

    async def authority_certificate(self, org: str) -> str:
        """The org's root certificate (PEM), made the first time it is asked for."""
        cert_pem, _ = await self._keys().authority(self._conn, org)
        return cert_pem

    async def has_authority(self, org: str) -> bool:
        return bool(await self._conn.fetchval("SELECT true FROM signer.authorities WHERE org = $1", org))

    async def crl(self, org: str) -> bytes:
        """The org's CRL (DER) as it stands now."""
        return await self._keys().crl(self._conn, org)

    def _keys(self) -> Keyring:
        if self._keyring is None:
            raise RuntimeError("this store was made without the keyring")
        return self._keyring

    # Documents and requests.

    async def begin_document(self, document_id: UUID, org: str, original: str) -> SignerDocument:
        """The document's PDF as the signer has it; begun from intake's ``original`` the first time. One statement
        either way (the insert returns the row it made, or the same statement reads the one there)."""
        row = await self._conn.fetchrow(
            "WITH begun AS (INSERT INTO signer.documents (document_id, org, pdf_sha256) VALUES ($1, $2, $3)"
            "   ON CONFLICT DO NOTHING RETURNING *)"
            " SELECT *, true AS begun FROM begun"
            " UNION ALL SELECT *, false FROM signer.documents WHERE document_id = $1 AND NOT EXISTS (SELECT FROM begun)",
            document_id, org, original,
        )
        if row is None:  # begun by a transaction that committed while this statement ran (its snapshot has no row)
            return await self.document(document_id)  # type: ignore[return-value]
        return self._begun_document(row, document_id)

    def _begun_document(self, row: asyncpg.Record, document_id: UUID) -> SignerDocument:
        if row["begun"]:
            self._begun.add(document_id)
        return _document(row)

    async def document(self, document_id: UUID) -> SignerDocument | None:
        row = await self._conn.fetchrow("SELECT * FROM signer.documents WHERE document_id = $1", document_id)
        return _document(row) if row else None

    async def placeholders_unknown(self, document_id: UUID) -> bool:
        """Whether the document's placeholders were not looked for yet (locking it while they are). Not read for a
        document this transaction began and did not touch since: its row is locked by the insert, placeholders NULL.

        FOR NO KEY UPDATE, not FOR UPDATE: this transaction's request row already holds a key-share lock on the
        document (its foreign key), and so may another request's transaction; FOR UPDATE waits for such locks, so two
        requests of one document asking at once each waited for the other (a deadlock). This lock waits only for
        another that looks for the placeholders, as the UPDATE that saves them does."""
        if document_id in self._begun:
            self._begun.discard(document_id)
            return True
        sql = "SELECT placeholders IS NULL FROM signer.documents WHERE document_id = $1 FOR NO KEY UPDATE"
        return bool(await self._conn.fetchval(sql, document_id))

    async def save_placeholders(self, document_id: UUID, placeholders: Sequence[Placeholder]) -> None:
        self._begun.discard(document_id)
        await self._conn.execute(
            "UPDATE signer.documents SET placeholders = $2 WHERE document_id = $1 AND placeholders IS NULL",
            document_id, _placeholders_json(placeholders),
        )

    async def end_document(self, document_id: UUID, status: str) -> None:
        """The document ``status`` (completed, declined, withdrawn) and its pending requests cancelled, "the document
        was <status>", in one statement."""
        await self._conn.execute(
            "WITH cancelled AS (UPDATE signer.requests SET status = 'cancelled', status_reason = 'the document was ' || $2,"
            "   decided_at = now() WHERE status = 'pending' AND document_id = $1)"
            " UPDATE signer.documents SET status = $2, updated_at = now() WHERE document_id = $1",
            document_id, status,
        )

    async def begin_request(self, request: SigningRequest, original: str) -> SignerDocument:
        """:meth:`begin_document` for the request's document and :meth:`insert_request`, in one statement (the
        request's reference to its document is checked at the statement's end, when the document is there)."""
        r = request
        row = await self._conn.fetchrow(
            "WITH begun AS (INSERT INTO signer.documents (document_id, org, pdf_sha256) VALUES ($2, $3, $14)"
            "   ON CONFLICT DO NOTHING RETURNING *),"
            " asked AS (INSERT INTO signer.requests (request_id, document_id, org, step, step_count, action, signer,"
            "   on_behalf_of, title, filename, submitted_by, confidential, signature_count)"
            "   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13))"
            " SELECT *, true AS begun FROM begun"
            " UNION ALL SELECT *, false FROM signer.documents WHERE document_id = $2 AND NOT EXISTS (SELECT FROM begun)",
            r.request_id, r.document_id, r.org, r.step, r.step_count, r.action, r.signer.model_dump(),
            r.on_behalf_of.model_dump() if r.on_behalf_of else None, r.title, r.filename, r.submitted_by.model_dump(),
            r.confidential, r.signature_count, original,
        )
        return self._begun_document(row, r.document_id) if row else await self.document(r.document_id)  # type: ignore[return-value]

    async def insert_request(self, request: SigningRequest) -> None:
        r = request
        await self._conn.execute(
            "INSERT INTO signer.requests (request_id, document_id, org, step, step_count, action, signer, on_behalf_of,"
            " title, filename, submitted_by, confidential, signature_count)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            r.request_id, r.document_id, r.org, r.step, r.step_count, r.action, r.signer.model_dump(),
            r.on_behalf_of.model_dump() if r.on_behalf_of else None, r.title, r.filename, r.submitted_by.model_dump(),
            r.confidential, r.signature_count,
        )

    async def request(self, request_id: UUID) -> SigningRequest | None:
        row = await self._conn.fetchrow("SELECT * FROM signer.requests WHERE request_id = $1", request_id)
        return _request(row) if row else None

    async def readdress(self, request_id: UUID, signer: PersonRef) -> None:
        """The request's signer as the directory has her now: later mails (reminders too) go to this address."""
        await self._conn.execute("UPDATE signer.requests SET signer = $2 WHERE request_id = $1", request_id, signer.model_dump())

    async def document_filename(self, document_id: UUID) -> str | None:
        sql = "SELECT filename FROM signer.requests WHERE document_id = $1 LIMIT 1"
        return await self._conn.fetchval(sql, document_id)

    async def signed_before(self, document_id: UUID) -> list[SigningRequest]:
        """The document's signed requests, first signed first."""
        sql = "SELECT * FROM signer.requests WHERE document_id = $1 AND status = 'signed' ORDER BY decided_at"
        return [_request(r) for r in await self._conn.fetch(sql, document_id)]

    async def cancel_pending(
        self, *, document_id: UUID | None = None, request_id: UUID | None = None, status: str = "cancelled", reason: str
    ) -> None:
        await self._conn.execute(
            "UPDATE signer.requests SET status = $3, status_reason = $4, decided_at = now()"
            " WHERE status = 'pending' AND (document_id = $1 OR request_id = $2)",
            document_id, request_id, status, reason,
        )

    async def record_signature(
        self, link: SigningLink, *, pdf: bytes, revision: int, placeholders: Sequence[Placeholder], field_name: str, at: datetime
    ) -> str:
        """The document's new version ``pdf`` stored (as :meth:`put_version`) and made current (placeholders kept from
        its first signature), the request signed and its token spent: one statement, as this sits between the
        signature and the commit a signer waits for. Returns the version's digest."""
        self._begun.discard(link.request.document_id)
        digest = blobs.sha256_hex(pdf)
        await self._conn.execute(
            "WITH blob AS (INSERT INTO blobs.blob (sha256, size, data) VALUES ($2, $10, $11) ON CONFLICT DO NOTHING),"
            " version AS (INSERT INTO blobs.versions (document_id, revision, org, sha256) VALUES ($1, $3, $9, $2)"
            "   ON CONFLICT DO NOTHING),"
            " document AS (UPDATE signer.documents SET pdf_sha256 = $2, revision = $3,"
            "   placeholders = COALESCE(placeholders, $4), updated_at = now() WHERE document_id = $1),"
            " decided AS (UPDATE signer.requests SET status = 'signed', field_name = $6, decided_at = $7"
            "   WHERE request_id = $5)"
            " UPDATE signer.tokens SET used_at = $7 WHERE token_hash = $8",
            link.request.document_id, digest, revision, _placeholders_json(placeholders),
            link.request.request_id, field_name, at, link.token_hash, link.request.org, len(pdf), pdf,
        )
        self._recent.keep(digest, pdf)
        return digest

    async def mark_decided(self, link: SigningLink, *, status: str, at: datetime, reason: str | None = None) -> None:
        """The request signed (approved) or declined and its token spent, in one statement."""
        await self._conn.execute(
            "WITH decided AS (UPDATE signer.requests SET status = $2, status_reason = $3, decided_at = $4"
            " WHERE request_id = $1) UPDATE signer.tokens SET used_at = $4 WHERE token_hash = $5",
            link.request.request_id, status, reason, at, link.token_hash,
        )

    async def register_verification_code(self, document_id: UUID, org: str, code: str, secret_hash: bytes) -> bool:
        """The document's verification code and its secret's hash; False when the code is taken."""
        return await check.register(self._conn, document_id, org, code, secret_hash)

    async def forget_verification_code(self, document_id: UUID) -> None:
        await self._conn.execute("DELETE FROM signer.verification_codes WHERE document_id = $1", document_id)

    # Links.

    async def insert_token(self, token_hash: bytes, request_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID) -> None:
        """The request's new mailed link; every earlier mailed one that was not used stops working. A link the portal
        made (no mail) stays: it is in use on her screen, or a bulk run is about to sign with it."""
        await self._conn.execute(
            "UPDATE signer.tokens SET revoked_at = now()"
            " WHERE request_id = $1 AND used_at IS NULL AND revoked_at IS NULL AND mail_id IS NOT NULL",
            request_id,
        )
        await self._conn.execute(
            "INSERT INTO signer.tokens (token_hash, request_id, person_id, expires_at, mail_id) VALUES ($1, $2, $3, $4, $5)",
            token_hash, request_id, person_id, expires_at, mail_id,
        )

    async def find_link_and_signed(self, token_hash: bytes) -> tuple[SigningLink | None, list[SigningRequest]]:
        """:meth:`find_link` and the :meth:`signed_before` of its document in one round trip, for the signing page."""
        row = await self._conn.fetchrow(_FIND_LINK_AND_SIGNED, token_hash)
        return (_link(row), [_request_from_json(r) for r in row["signed_before"]]) if row else (None, [])

    async def find_link(self, token_hash: bytes, *, lock: bool = False) -> SigningLink | None:
        """The token with its request and document, or None when no such link was ever made.

        ``open_steps``: the steps of the document's open requests; ``policy``: what the visibility policy weighs
        (its person and document as the router has them). ``lock`` locks the token, the request and the document
        (signatures on one document are made one after the other), all in this one round trip."""
        row = await self._conn.fetchrow(_FIND_LOCKED_LINK if lock else _FIND_LINK, token_hash)
        if row is None:
            return None
        link = _link(row)
        if lock:
            signer = link.request.signer
            self._certificates[(link.request.org, signer.id, signer.title)] = certificate_row(row)
        return link

    async def revoke_links_of_mail(self, mail_id: UUID) -> None:
        """The links made for a mail that never arrived stop working."""
        for table in ("tokens", "downloads"):
            sql = f"UPDATE signer.{table} SET revoked_at = now() WHERE mail_id = $1 AND revoked_at IS NULL"
            await self._conn.execute(sql, mail_id)

    async def grant_download(
        self, *, document_id: UUID, org: str, person_id: str, pdf_sha256: str, filename: str | None = None
    ) -> None:
        """The person may download the signed PDF, under ``filename`` (by default :meth:`document_filename`, else
        ``document.pdf``: read in the same statement)."""
        await self._conn.execute(
            "INSERT INTO signer.download_grants (document_id, person_id, org, pdf_sha256, filename)"
            " VALUES ($1, $2, $3, $4, coalesce($5, (SELECT filename FROM signer.requests WHERE document_id = $1 LIMIT 1),"
            " 'document.pdf')) ON CONFLICT DO NOTHING",
            document_id, person_id, org, pdf_sha256, filename,
        )

    async def insert_download(
        self, token_hash: bytes, *, document_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID
    ) -> bool:
        """A download link for the person's grant (False when there is none); earlier ones stop working."""
        await self._conn.execute(
            "UPDATE signer.downloads SET revoked_at = now() WHERE document_id = $1 AND person_id = $2 AND revoked_at IS NULL",
            document_id, person_id,
        )
        inserted = await self._conn.fetchval(
            "INSERT INTO signer.downloads (token_hash, document_id, org, person_id, pdf_sha256, filename, expires_at, mail_id)"
            " SELECT $1, document_id, org, person_id, pdf_sha256, filename, $4, $5 FROM signer.download_grants"
            " WHERE document_id = $2 AND person_id = $3 RETURNING true",
            token_hash, document_id, person_id, expires_at, mail_id,
        )
        return bool(inserted)

    async def find_download(self, token_hash: bytes) -> Download | None:
        row = await self._conn.fetchrow("SELECT * FROM signer.downloads WHERE token_hash = $1", token_hash)
        return _download(row) if row else None
