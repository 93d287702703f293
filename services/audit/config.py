from datetime import timedelta

from shared.settings import Settings


class AuditSettings(Settings):
    audit_port: int = 8085
    seal_every: timedelta = timedelta(hours=1)  # how often the chain's head is sealed (and at every stop)
    tsa_url: str | None = None  # an RFC 3161 time-stamping authority; set, every checkpoint carries its token
