"""Daily digests: a person whose directory entry says ``mails: digest`` and for
whom more than PARAAF_DIGEST_THRESHOLD requests wait gets no mail per new
request; the request is held for her digest instead, and the scheduler sends
her one digest a day, from PARAAF_DIGEST_HOUR (local time) on, when something
was held for it: how many wait, their titles, and one link to her "To sign"
list in the portal, where she can sign several at once. Everyone else
(``individual``, the default) keeps getting a mail per request. Reminders and
declining stay per document.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog

from services.notifier.render import MailRenderer
from services.notifier.store import SpooledMail
from shared.contract import SendSigningLink
from shared.events import PersonRef

__all__ = ["DigestPolicy", "DigestStore", "held_for_digest", "send_digests"]

_NAMESPACE = uuid.UUID("0b7e2f55-3d43-4a2b-9f0e-6a1c2d9e4b71")
_TITLES_SHOWN = 20


@dataclass(frozen=True)
class DigestPolicy:
    threshold: int  # PARAAF_DIGEST_THRESHOLD
    list_url: str  # the portal's "To sign", from PARAAF_PUBLIC_URL
    hour: int = 8  # PARAAF_DIGEST_HOUR
    timezone: str = "Europe/Brussels"
    portal_of: Callable[[str], str] | None = None  # an organisation's own portal (many cities on one installation)

    def list_url_of(self, org: str) -> str:
        """The "To sign" list on ``org``'s own portal, where its people's sessions work."""
        return self.portal_of(org).rstrip("/") + "/p/to-sign" if self.portal_of is not None else self.list_url

    def todays(self, now: datetime) -> datetime:
        """When today's digests go out (today in the city's time zone)."""
        zone = ZoneInfo(self.timezone)
        return datetime.combine(now.astimezone(zone).date(), time(self.hour), tzinfo=zone)


class DigestStore(Protocol):
    async def note_recipient_preference(self, request_id: UUID, org: str, recipient: PersonRef, title: str) -> str: ...
    async def waiting_for(self, org: str, person_id: str) -> int: ...
    async def hold_for_digest(self, request_id: UUID) -> None: ...
    async def digests_due(self, since: datetime) -> list[tuple[str, str]]: ...
    async def waiting_requests(self, org: str, person_id: str) -> list[tuple[UUID, UUID, PersonRef, str, bool]]: ...
    async def record_digest(self, mail_id: UUID, org: str, person_id: str, requests: Sequence[UUID], waiting: int, now: datetime) -> None: ...
    async def queue_mail(self, mail: SpooledMail, now: datetime) -> bool: ...


async def held_for_digest(store: DigestStore, command: SendSigningLink, policy: DigestPolicy, preference: str | None = None) -> bool:
    """Whether this new request's mail gives way to the person's digest (it is then held for it). ``preference``:
    hers, when the request's recipient was noted already (:meth:`PostgresNotifierStore.schedule_for_request`)."""
    recipient = command.recipient
    if preference is None:
        preference = await store.note_recipient_preference(command.request_id, command.org, recipient, command.title)
    if preference != "digest":
        return False
    waiting = await store.waiting_for(command.org, recipient.id)
    if waiting <= policy.threshold:
        return False
    await store.hold_for_digest(command.request_id)
    structlog.get_logger().info("mail held for the digest", request_id=str(command.request_id), person=recipient.id, waiting=waiting)
    return True


def digest_mail_id(org: str, person_id: str, day: datetime) -> UUID:
    """One digest per person per day, whichever replica makes it."""
    return uuid.uuid5(_NAMESPACE, f"{org}/{person_id}/{day.date().isoformat()}")


async def send_digests(store: DigestStore, renderer: MailRenderer, policy: DigestPolicy, now: datetime) -> int:
    """Once today's hour has come: a digest to each person with a request held for one and none sent since; return how many."""
    todays = policy.todays(now)
    if now < todays:
        return 0
    sent = 0
    for org, person_id in await store.digests_due(todays):
        waiting = await store.waiting_requests(org, person_id)
        held = [request for request, *_, was_held in waiting if was_held]
        if not held:
            continue  # another replica is sending it
        recipient: PersonRef = waiting[-1][2]  # as the latest request named her
        titles = [title for *_, title, _ in waiting]
        mail = renderer.render(
            "digest", recipient.language, recipient=recipient, count=len(waiting), titles=titles[:_TITLES_SHOWN], link=policy.list_url_of(org)
        )
        mail_id = digest_mail_id(org, person_id, todays)
        documents = tuple(dict.fromkeys(document for _, document, *_ in waiting))
        spooled = SpooledMail(mail_id, org, documents[0], "signature_digest", recipient.email or "", mail, related_documents=documents)
        await store.queue_mail(spooled, now)
        await store.record_digest(mail_id, org, person_id, held, len(waiting), now)
        sent += 1
    if sent:
        structlog.get_logger().info("digests queued", count=sent)
    return sent
