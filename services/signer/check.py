"""The public check behind a verification code: which document a code and its
secret stand for, what a citizen may see of it, and how many wrong pairs a
client may try (counted in PostgreSQL, so every signer process shares the count).

An attempt is counted before it is judged (one atomic increment per scope,
the client's address and everyone's), and given back when it was right, so
a burst of parallel guesses cannot slip past the limit between a read and a
write. What the page shows of a document follows the visibility rules: the
code and secret are printed on the document, so whoever holds both has held
the document, but a photo of a footer is not the document. A confidential
document, or one of a shielded group, is therefore confirmed (title, who
signed, when, whether it is valid) and an offered file compared with it, but
never handed out from this page.
"""

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from services.signer.verification import secret_hash
from shared.events import PersonRef

__all__ = ["CheckLimits", "CheckedDocument", "CheckedSignature", "Attempt", "attempt", "client_scope", "find", "forgive", "register"]

_EVERYONE = "*"


@dataclass(frozen=True)
class CheckLimits:
    per_address: int = 10  # wrong pairs one client address may try per window
    overall: int = 1000  # wrong pairs everyone together may try per window
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Attempt:
    used: int  # attempts counted against the client's address in this window, this one included
    limited_until: datetime | None  # set when this attempt is refused: past the address's or everyone's limit


@dataclass(frozen=True)
class CheckedSignature:
    signer: PersonRef
    on_behalf_of: PersonRef | None
    action: str  # sign | approve
    at: datetime


@dataclass(frozen=True)
class CheckedDocument:
    document_id: UUID
    org: str
    title: str
    filename: str
    status: str  # active | completed | declined | withdrawn
    pdf_sha256: str
    signatures: tuple[CheckedSignature, ...]
    planned: int | None
    hidden: bool  # confidential or shielded: confirmed, never handed out here

    @property
    def valid(self) -> bool:
        return self.status == "completed"


def client_scope(address: str) -> str:
    """An IPv4 address as is; an IPv6 address by its /64 (one subscriber's network)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"address:{address[:64]}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"address:{parsed.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((parsed, 64), strict=False)}"
    return f"address:{parsed}"


_WINDOW = "date_bin($2::interval, now(), timestamptz '2000-01-01')"


async def attempt(conn: asyncpg.Connection, scope: str, limits: CheckLimits) -> Attempt:
    """Counts one attempt from ``scope`` (and everyone), refused when either is past its limit."""
    rows = await conn.fetch(
        "INSERT INTO signer.check_failures (scope, window_start, failures)"
        f" SELECT s, {_WINDOW}, 1 FROM unnest($1::text[]) s"
        " ON CONFLICT (scope, window_start) DO UPDATE SET failures = signer.check_failures.failures + 1"
        f" RETURNING scope, failures, window_start + $2::interval AS until",
        [scope, _EVERYONE], limits.window,
    )
    counts = {r["scope"]: r["failures"] for r in rows}
    if counts[_EVERYONE] == 1:  # a new window: forget the old ones
        await conn.execute("DELETE FROM signer.check_failures WHERE window_start < now() - interval '1 day'")
    refused = counts[scope] > limits.per_address or counts[_EVERYONE] > limits.overall
    return Attempt(counts[scope], rows[0]["until"] if refused else None)


async def forgive(conn: asyncpg.Connection, scope: str, limits: CheckLimits) -> None:
    """A right pair does not count against anyone."""
    await conn.execute(
        f"UPDATE signer.check_failures SET failures = failures - 1 WHERE scope = ANY($1::text[]) AND window_start = {_WINDOW}",
        [scope, _EVERYONE], limits.window,
    )


async def register(conn: asyncpg.Connection, document_id: UUID, org: str, code: str, hashed: bytes) -> bool:
    """The document's code; False when the code is taken (draw another)."""
    inserted = await conn.fetchval(
        "INSERT INTO signer.verification_codes (code, document_id, org, secret_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (code) DO NOTHING RETURNING true",
        code, document_id, org, hashed,
    )
    return bool(inserted)


_DOCUMENT = """
SELECT v.document_id, v.org, v.secret_hash, d.status, d.pdf_sha256,
       r.title, r.filename, r.signature_count,
       r.confidential OR coalesce(g.shielded, false) AS hidden
  FROM signer.verification_codes v
  JOIN signer.documents d USING (document_id)
  JOIN LATERAL (SELECT * FROM signer.requests q WHERE q.document_id = v.document_id ORDER BY q.created_at LIMIT 1) r ON true
  LEFT JOIN router.instances i ON i.document_id = v.document_id
  LEFT JOIN router.groups g ON g.org = i.org AND g.key = i.group_key
 WHERE v.code = $1
"""


def _person(stored: dict | None) -> PersonRef | None:
    return PersonRef.model_validate(stored) if stored else None


async def find(conn: asyncpg.Connection, key: bytes, code: str, secret: str) -> CheckedDocument | None:
    """The document behind the code, when the secret is its secret; None otherwise (whichever part was wrong)."""
    row = await conn.fetchrow(_DOCUMENT, code)
    expected = row["secret_hash"] if row else secret_hash(key, "0" * 16, "")  # the same work either way
    if row is None or not hmac.compare_digest(expected, secret_hash(key, code, secret)):
        return None
    signed = await conn.fetch(
        "SELECT signer, on_behalf_of, action, decided_at FROM signer.requests"
        " WHERE document_id = $1 AND status = 'signed' ORDER BY decided_at",
        row["document_id"],
    )
    return CheckedDocument(
        document_id=row["document_id"], org=row["org"], title=row["title"], filename=row["filename"], status=row["status"],
        pdf_sha256=row["pdf_sha256"], planned=row["signature_count"], hidden=row["hidden"],
        signatures=tuple(
            CheckedSignature(PersonRef.model_validate(s["signer"]), _person(s["on_behalf_of"]), s["action"], s["decided_at"])
            for s in signed
        ),
    )
