"""An in-memory :class:`SignerStore` for unit tests: the same behaviour as PostgresSignerStore
(tests/integration/test_signer_store.py runs one contract against both)."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from services.signer.domain import DirectoryPerson, Download, SignerDocument, SigningLink, SigningRequest
from services.signer.keys import Credentials
from services.signer.pades import Placeholder
from services.signer.store import RequestFacts
from shared.blobs import BlobNotFound
from shared.events import PersonRef

__all__ = ["FakeSignerStore"]


@dataclass(frozen=True)
class _Token:
    token_hash: bytes
    request_id: UUID
    person_id: str
    expires_at: datetime
    mail_id: UUID
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class _Grant:
    org: str
    pdf_sha256: str
    filename: str


class FakeSignerStore:
    def __init__(self) -> None:
        self.published: list[BaseModel] = []
        self.blobs: dict[str, bytes] = {}
        self.versions: dict[tuple[UUID, str], dict[int, str]] = {}
        self.people: dict[tuple[str, str], DirectoryPerson] = {}
        self.titles: dict[tuple[str, str], set[str]] = {}
        self.issued: list[tuple[str, str]] = []  # (org, person id) of every certificate asked for
        self.documents: dict[UUID, SignerDocument] = {}
        self.requests: dict[UUID, SigningRequest] = {}
        self.tokens: dict[bytes, _Token] = {}
        self.grants: dict[tuple[UUID, str], _Grant] = {}
        self.downloads: dict[bytes, Download] = {}
        self.download_mails: dict[bytes, UUID] = {}
        self.codes: dict[str, tuple[UUID, bytes]] = {}  # verification code -> (document, secret hash)

    def in_directory(self, org: str, person: PersonRef, *titles: str) -> None:
        """The person as the router's directory has them, holding the roles titled ``titles``."""
        self.people[(org, person.id)] = DirectoryPerson(person.id, person.name, person.email)
        self.titles[(org, person.id)] = set(titles)

    def sent(self, kind: type[BaseModel]) -> list[Any]:
        return [m for m in self.published if isinstance(m, kind)]

    async def publish(self, message: BaseModel) -> None:
        self.published.append(message)

    # What others keep.

    async def version_digests(self, document_id: UUID, org: str) -> list[str]:
        return [d for _, d in sorted(self.versions.get((document_id, org), {}).items())]

    async def blob(self, digest: str) -> bytes:
        if digest not in self.blobs:
            raise BlobNotFound(digest)
        return self.blobs[digest]

    async def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None:
        self.versions.setdefault((document_id, org), {}).setdefault(revision, digest)

    async def put_version(self, document_id: UUID, revision: int, org: str, data: bytes) -> str:
        digest = await self.put_blob(data)
        await self.register_version(document_id, revision, org, digest)
        return digest

    async def directory_person(self, org: str, person_id: str) -> DirectoryPerson | None:
        return self.people.get((org, person_id))

    async def held_titles(self, org: str, person_id: str) -> set[str]:
        return set(self.titles.get((org, person_id), set()))

    async def request_facts(
        self, org: str, document_id: UUID, person_ids: Sequence[str], *, titles_of: str | None = None
    ) -> RequestFacts:
        people = {person_id: self.people.get((org, person_id)) for person_id in person_ids}
        titled = titles_of is not None and people.get(titles_of) is not None
        titles = await self.held_titles(org, titles_of) if titled else set()  # type: ignore[arg-type]
        return RequestFacts(await self.version_digests(document_id, org), people, titles)

    async def credentials(self, org: str, person: PersonRef) -> Credentials:
        self.issued.append((org, person.id))
        return Credentials(key_der=b"key", cert_der=f"cert of {person.id}".encode(), chain_der=(b"root",))

    async def prepare_credentials(self, org: str, person: PersonRef) -> None:
        await self.credentials(org, person)

    async def crl(self, org: str) -> bytes:
        return f"crl of {org}".encode()

    async def authority_certificate(self, org: str) -> str:
        return f"-----BEGIN CERTIFICATE-----\n{org}\n-----END CERTIFICATE-----\n"

    # Documents and requests.

    async def begin_document(self, document_id: UUID, org: str, original: str) -> SignerDocument:
        return self.documents.setdefault(document_id, SignerDocument(document_id, org, original))

    async def document(self, document_id: UUID) -> SignerDocument | None:
        return self.documents.get(document_id)

    async def placeholders_unknown(self, document_id: UUID) -> bool:
        document = self.documents.get(document_id)
        return document is not None and document.placeholders is None

    async def save_placeholders(self, document_id: UUID, placeholders: Sequence[Placeholder]) -> None:
        if self.documents[document_id].placeholders is None:
            self.documents[document_id] = replace(self.documents[document_id], placeholders=tuple(placeholders))

    async def end_document(self, document_id: UUID, status: str) -> None:
        await self.cancel_pending(document_id=document_id, reason=f"the document was {status}")
        if document_id in self.documents:
            self.documents[document_id] = replace(self.documents[document_id], status=status)

    async def begin_request(self, request: SigningRequest, original: str) -> SignerDocument:
        document = await self.begin_document(request.document_id, request.org, original)
        await self.insert_request(request)
        return document

    async def insert_request(self, request: SigningRequest) -> None:
        if request.request_id in self.requests or request.document_id not in self.documents:
            raise ValueError(f"request {request.request_id} exists or its document does not")
        self.requests[request.request_id] = request

    async def request(self, request_id: UUID) -> SigningRequest | None:
        return self.requests.get(request_id)

    async def readdress(self, request_id: UUID, signer: PersonRef) -> None:
        self.requests[request_id] = replace(self.requests[request_id], signer=signer)

    async def document_filename(self, document_id: UUID) -> str | None:
        return next((r.filename for r in self.requests.values() if r.document_id == document_id), None)

    async def signed_before(self, document_id: UUID) -> list[SigningRequest]:
        signed = [r for r in self.requests.values() if r.document_id == document_id and r.status == "signed"]
        return sorted(signed, key=lambda r: r.decided_at or datetime.min.replace(tzinfo=UTC))

    async def cancel_pending(
        self, *, document_id: UUID | None = None, request_id: UUID | None = None, status: str = "cancelled", reason: str
    ) -> None:
        for r in list(self.requests.values()):
            if r.open and (r.document_id == document_id or r.request_id == request_id):
                self.requests[r.request_id] = replace(r, status=status, status_reason=reason, decided_at=datetime.now(UTC))

    async def record_signature(
        self, link: SigningLink, *, pdf: bytes, revision: int, placeholders: Sequence[Placeholder], field_name: str, at: datetime
    ) -> str:
        pdf_sha256 = await self.put_version(link.request.document_id, revision, link.request.org, pdf)
        document = self.documents[link.request.document_id]
        kept = document.placeholders if document.placeholders is not None else tuple(placeholders)
        self.documents[document.document_id] = replace(document, pdf_sha256=pdf_sha256, revision=revision, placeholders=kept)
        await self._decide(link, status="signed", at=at, field_name=field_name)
        return pdf_sha256

    async def mark_decided(self, link: SigningLink, *, status: str, at: datetime, reason: str | None = None) -> None:
        await self._decide(link, status=status, at=at, status_reason=reason)

    async def register_verification_code(self, document_id: UUID, org: str, code: str, secret_hash: bytes) -> bool:
        if code in self.codes:
            return False
        self.codes[code] = (document_id, secret_hash)
        return True

    async def forget_verification_code(self, document_id: UUID) -> None:
        self.codes = {code: kept for code, kept in self.codes.items() if kept[0] != document_id}

    async def _decide(self, link: SigningLink, *, at: datetime, **changes: Any) -> None:
        request = self.requests[link.request.request_id]
        self.requests[request.request_id] = replace(request, decided_at=at, **changes)
        self.tokens[link.token_hash] = replace(self.tokens[link.token_hash], used_at=at)

    # Links.

    async def insert_token(self, token_hash: bytes, request_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID) -> None:
        for t in list(self.tokens.values()):
            if t.request_id == request_id and t.used_at is None and t.revoked_at is None and t.mail_id is not None:
                self.tokens[t.token_hash] = replace(t, revoked_at=datetime.now(UTC))
        self.tokens[token_hash] = _Token(token_hash, request_id, person_id, expires_at, mail_id)

    async def find_link(self, token_hash: bytes, *, lock: bool = False) -> SigningLink | None:
        token = self.tokens.get(token_hash)
        if token is None:
            return None
        request = self.requests[token.request_id]
        open_steps = tuple(r.step for r in self.requests.values() if r.document_id == request.document_id and r.open)
        return SigningLink(
            token_hash=token_hash, person_id=token.person_id, expires_at=token.expires_at, request=request,
            document=self.documents[request.document_id], used_at=token.used_at, revoked_at=token.revoked_at, open_steps=open_steps,
        )

    async def find_link_and_signed(self, token_hash: bytes) -> tuple[SigningLink | None, list[SigningRequest]]:
        link = await self.find_link(token_hash)
        return link, await self.signed_before(link.request.document_id) if link else []

    async def revoke_links_of_mail(self, mail_id: UUID) -> None:
        now = datetime.now(UTC)
        for t in list(self.tokens.values()):
            if t.mail_id == mail_id and t.revoked_at is None:
                self.tokens[t.token_hash] = replace(t, revoked_at=now)
        for token_hash, d in list(self.downloads.items()):
            if self.download_mails[token_hash] == mail_id and d.revoked_at is None:
                self.downloads[token_hash] = replace(d, revoked_at=now)

    async def grant_download(
        self, *, document_id: UUID, org: str, person_id: str, pdf_sha256: str, filename: str | None = None
    ) -> None:
        filename = filename or await self.document_filename(document_id) or "document.pdf"
        self.grants.setdefault((document_id, person_id), _Grant(org, pdf_sha256, filename))

    async def insert_download(
        self, token_hash: bytes, *, document_id: UUID, person_id: str, expires_at: datetime, mail_id: UUID
    ) -> bool:
        for key, d in list(self.downloads.items()):
            if (d.document_id, d.person_id) == (document_id, person_id) and d.revoked_at is None:
                self.downloads[key] = replace(d, revoked_at=datetime.now(UTC))
        grant = self.grants.get((document_id, person_id))
        if grant is None:
            return False
        self.downloads[token_hash] = Download(
            token_hash, document_id, grant.org, person_id, grant.pdf_sha256, grant.filename, expires_at
        )
        self.download_mails[token_hash] = mail_id
        return True

    async def find_download(self, token_hash: bytes) -> Download | None:
        return self.downloads.get(token_hash)
