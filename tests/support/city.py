"""A seeded city for the visibility tests: departments, a shielded social-welfare
group (OCMW), a shielded disciplinary group (tucht), a confidential performance
review, a substitute outside a shielded group, an operator, and a second org.

The directory and the documents are written as the router keeps them (its
tables); each open request also reaches the signer as a signature.requested,
as it would over the broker. Sessions are made as a sign-in makes them.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from services.signer import handlers
from services.signer.pades import find_placeholders
from services.signer.sessions import Sessions
from shared.blobs import put_blob, register_version
from shared.events import PersonRef, SignatureRequested
from tests.support.pdfs import make_pdf
from tests.support.signer_harness import SignerHarness

__all__ = ["CITY_PEOPLE", "DOCUMENTS", "City", "SeededDocument", "seed_city"]

# id: (department, org)
CITY_PEOPLE: dict[str, tuple[str, str]] = {
    "hilde": ("Personeel", "default"),  # department head; submits the review and the disciplinary file
    "pieter": ("Personeel", "default"),  # HR officer; signs both
    "karel": ("Personeel", "default"),  # a colleague in the same department
    "ann": ("Secretariaat", "default"),  # general director
    "elen": ("Secretariaat", "default"),  # submits the council decision
    "bart": ("Bestuur", "default"),  # mayor
    "sofie": ("Bestuur", "default"),  # alderman; nadia's first substitute, outside the shielded OCMW group
    "oscar": ("OCMW", "default"),  # social worker; submits the welfare file
    "nadia": ("OCMW", "default"),  # asked for the welfare file, then away: her request moved to lotte
    "lotte": ("OCMW", "default"),  # nadia's substitute inside the group
    "olga": ("Omgeving", "default"),  # another department
    "iris": ("ICT", "default"),  # operator
    "zoe": ("Personeel", "elders"),  # a person of another city
}
GROUPS = [
    ("default", "bestuur", ["Bestuur", "Secretariaat"], False),
    ("default", "personeel", ["Personeel"], False),
    ("default", "omgeving", ["Omgeving"], False),
    ("default", "ocmw", ["OCMW"], True),
    ("default", "tucht", ["Personeel"], True),
    ("elders", "personeel", ["Personeel"], False),
]


@dataclass(frozen=True)
class SeededDocument:
    key: str
    org: str
    title: str
    group: str
    confidential: bool
    submitter: str
    requests: tuple[tuple[str, str], ...]  # (person, status) in the order asked


DOCUMENTS = (
    SeededDocument("D", "default", "Collegebesluit 2026-17", "bestuur", False, "elen", (("ann", "signed"), ("bart", "pending"))),
    SeededDocument("R", "default", "Evaluatieverslag Karel 2026", "personeel", True, "hilde", (("pieter", "signed"), ("ann", "pending"))),
    SeededDocument("O", "default", "Sociaal onderzoek 2026-5", "ocmw", False, "oscar", (("nadia", "reassigned"), ("lotte", "pending"))),
    SeededDocument("T", "default", "Tuchtdossier 2026-2", "tucht", True, "hilde", (("pieter", "signed"), ("ann", "pending"))),
    SeededDocument("Z", "elders", "Evaluatieverslag Elders 2026", "personeel", False, "zoe", (("zoe", "pending"),)),
)


@dataclass
class City:
    documents: dict[str, UUID]
    requests: dict[tuple[str, str], UUID]  # (document key, person) -> request id
    sessions: dict[str, str]  # person -> session cookie


def ref(person: str) -> PersonRef:
    return PersonRef(id=person, name=person.capitalize(), email=f"{person}@city.example", language="nl")


async def _directory(conn: asyncpg.Connection) -> None:
    for person, (department, org) in CITY_PEOPLE.items():
        await conn.execute(
            "INSERT INTO router.people (org, id, name, email, department) VALUES ($1, $2, $3, $4, $5)",
            org, person, person.capitalize(), f"{person}@city.example", department,
        )
    for org, key, departments, shielded in GROUPS:
        await conn.execute("INSERT INTO router.groups (org, key, departments, shielded) VALUES ($1, $2, $3, $4)", org, key, departments, shielded)
    await conn.execute("INSERT INTO router.roles (org, key, title, holders) VALUES ('default', 'operator', 'operator', '{iris}')")
    await conn.execute("INSERT INTO router.substitutes (org, person_id, substitutes) VALUES ('default', 'nadia', '{sofie,lotte}')")


async def _document(conn: asyncpg.Connection, seeded: SeededDocument, created: datetime) -> tuple[UUID, str]:
    document_id, pdf = uuid4(), make_pdf(pages=1)
    digest = await put_blob(conn, pdf)
    await register_version(conn, document_id, 0, seeded.org, digest)
    await conn.execute(
        "INSERT INTO router.instances (document_id, org, flow_key, title, filename, submitted_by, confidential, department,"
        " group_key, steps, current_step, status, pdf_sha256, created_at, updated_at)"
        " VALUES ($1, $2, NULL, $3, $4, $5, $6, NULL, $7, $8, $9, 'active', $10, $11, $11)",
        document_id, seeded.org, seeded.title, f"{seeded.key}.pdf", ref(seeded.submitter).model_dump(), seeded.confidential,
        seeded.group, [{"action": "sign", "signers": [f"person:{p}"]} for p, _ in seeded.requests], len(seeded.requests), digest, created,
    )
    return document_id, digest


async def seed_city(signer: SignerHarness) -> City:
    """The directory, the five documents, their requests, and a session for every person."""
    city = City({}, {}, {})
    now = datetime.now(UTC)
    async with signer.pool.acquire() as conn:  # no transaction: the signer's handler reads the blobs on its own connection
        await _directory(conn)
        for seeded in DOCUMENTS:
            city.documents[seeded.key], digest = await _document(conn, seeded, now - timedelta(hours=1))
            for step, (person, status) in enumerate(seeded.requests, start=1):
                request_id = await _request(signer, conn, seeded, city.documents[seeded.key], digest, step, person, status)
                city.requests[(seeded.key, person)] = request_id
        for person, (_, org) in CITY_PEOPLE.items():
            city.sessions[person] = await Sessions(conn).start(org, person, "mail", now)
    return city


async def _request(
    signer: SignerHarness, conn: asyncpg.Connection, seeded: SeededDocument, document_id: UUID, digest: str, step: int,
    person: str, status: str,
) -> UUID:
    request_id = uuid4()
    await conn.execute(
        "INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, action, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'sign', $8)",
        request_id, document_id, seeded.org, step, f"person:{person}", person, ref(person).model_dump(), status,
    )
    if status == "pending":
        event = SignatureRequested(
            correlation_id=document_id, org=seeded.org, request_id=request_id, step=step, step_count=len(seeded.requests),
            signer=ref(person), title=seeded.title, filename=f"{seeded.key}.pdf", submitted_by=ref(seeded.submitter),
            pdf_sha256=digest, confidential=seeded.confidential,
        )
        await signer.in_store(
            lambda store: handlers.on_signature_requested(
                event, store, links=signer.links(), find_placeholders=lambda pdf: signer.signing_pool.run(find_placeholders, pdf)
            )
        )
    return request_id
