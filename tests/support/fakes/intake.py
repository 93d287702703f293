"""An in-memory :class:`IntakeStore` for unit tests: the same behaviour as PostgresIntakeStore
(tests/integration/test_intake_store.py runs one contract against both)."""

from dataclasses import replace
from uuid import UUID

from pydantic import BaseModel

from services.intake.domain import SourcePolicy
from services.intake.store import Document, Rejection
from shared.blobs import BlobNotFound, sha256_hex

__all__ = ["FakeIntakeStore"]


class FakeIntakeStore:
    def __init__(self, *policies: SourcePolicy) -> None:
        self.published: list[BaseModel] = []
        self.refused: list[tuple[UUID, bytes, dict[str, str]]] = []
        self.policies = {p.source: p for p in policies}
        self.blobs: dict[str, bytes] = {}
        self.versions: dict[tuple[UUID, int], tuple[str, str]] = {}
        self.documents: dict[UUID, Document] = {}
        self.rejections: list[Rejection] = []

    def sent(self, kind: type[BaseModel]) -> list:
        return [m for m in self.published if isinstance(m, kind)]

    async def publish(self, message: BaseModel) -> None:
        self.published.append(message)

    async def keep_refused(self, rejection_id: UUID, original: bytes, headers: dict[str, str]) -> None:
        self.refused.append((rejection_id, original, headers))

    async def source_policy(self, source: str, *, lock_ref: str | None = None) -> SourcePolicy | None:
        return self.policies.get(source)

    async def upsert_source(self, policy: SourcePolicy) -> bool:
        new = policy.source not in self.policies
        self.policies[policy.source] = policy
        return new

    async def sources(self) -> list[SourcePolicy]:
        return [self.policies[s] for s in sorted(self.policies)]

    async def delete_source(self, source: str) -> bool:
        return self.policies.pop(source, None) is not None

    async def put_pdf(self, data: bytes) -> str:
        digest = sha256_hex(data)
        self.blobs.setdefault(digest, data)
        return digest

    async def pdf(self, digest: str) -> bytes:
        if digest not in self.blobs:
            raise BlobNotFound(digest)
        return self.blobs[digest]

    async def register_version(self, document_id: UUID, revision: int, org: str, digest: str) -> None:
        self.versions.setdefault((document_id, revision), (org, digest))

    async def version_digests(self, document_id: UUID, org: str) -> list[str]:
        return [d for (doc, _), (o, d) in sorted(self.versions.items(), key=lambda i: i[0][1]) if doc == document_id and o == org]

    async def find_document(self, org: str, source: str, external_ref: str, *, locked: bool = False) -> Document | None:
        return next(
            (d for d in self.documents.values() if (d.org, d.source, d.external_ref) == (org, source, external_ref)), None
        )

    async def insert_document(self, document: Document) -> None:
        if await self.find_document(document.org, document.source, document.external_ref):
            raise ValueError("(org, source, external_ref) is taken")
        self.documents[document.document_id] = document

    async def add_document(self, document: Document, pdf: bytes) -> Document | None:
        if existing := await self.find_document(document.org, document.source, document.external_ref):
            return existing
        await self.insert_document(document)
        await self.register_version(document.document_id, 0, document.org, await self.put_pdf(pdf))
        return None

    async def complete(self, document_id: UUID, org: str, signed_sha256: str) -> tuple[bytes | None, Document | None]:
        if signed_sha256 not in await self.version_digests(document_id, org):
            return None, None
        return await self.pdf(signed_sha256), await self.set_status(document_id, "completed", signed_sha256=signed_sha256)

    async def set_status(
        self, document_id: UUID, status: str, reason: str | None = None, *, signed_sha256: str | None = None
    ) -> Document | None:
        document = self.documents.get(document_id)
        if document is None:
            return None
        updated = replace(document, status=status, reason=reason, signed_sha256=signed_sha256 or document.signed_sha256)
        self.documents[document_id] = updated
        return updated

    async def insert_rejection(self, rejection: Rejection) -> None:
        self.rejections.append(rejection)

    async def set_webhook(self, source: str, url: str | None, secret: str | None) -> None:
        self.webhooks = {**getattr(self, "webhooks", {}), source: (url, secret)}

    async def webhook_url(self, source: str) -> str | None:
        return getattr(self, "webhooks", {}).get(source, (None, None))[0]

    async def redeliver(self, source: str) -> int:
        return 0  # deliveries are the PostgreSQL store's (tests/e2e/test_source_requests.py)
