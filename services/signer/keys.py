"""The signer's keyring: certificate authorities and signer certificates,
stored encrypted in the signer's schema, decrypted once and kept in memory.
"""

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.signer import ca
from services.signer.config import SignerSettings
from shared.events import PersonRef

__all__ = ["Credentials", "Keyring", "key_secret"]


def key_secret(settings: SignerSettings) -> bytes:
    """PARAAF_KEY_SECRET, or (for a demo install) a secret kept in DATA_DIR."""
    if settings.key_secret is not None:
        return settings.key_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / "signer-key-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        structlog.get_logger().warning(
            "PARAAF_KEY_SECRET is not set; generated one in the data directory. Set it in production.",
            path=str(path),
        )
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Credentials:
    """What a signing worker needs, as bytes: key, certificate and its chain (DER)."""

    key_der: bytes
    cert_der: bytes
    chain_der: tuple[bytes, ...]


def _der(cert_pem: str) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)


class Keyring:
    def __init__(self, secret: bytes, organisation: str) -> None:
        self._secret = secret
        self._organisation = organisation
        self._authorities: dict[str, tuple[str, RSAPrivateKey]] = {}
        self._credentials: dict[tuple[str, str, str, str], Credentials] = {}

    async def authority(self, conn: asyncpg.Connection, org: str) -> tuple[str, RSAPrivateKey]:
        """The org's root (certificate PEM, key), created on first use."""
        if org in self._authorities:
            return self._authorities[org]
        row = await conn.fetchrow("SELECT cert_pem, key_pem FROM signer.authorities WHERE org = $1", org)
        if row is None:
            issued = await asyncio.to_thread(ca.new_authority, self._organisation, self._secret)
            await conn.execute(
                "INSERT INTO signer.authorities (org, cert_pem, key_pem) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                org,
                issued.cert_pem.decode(),
                issued.key_pem.decode(),
            )
            row = await conn.fetchrow("SELECT cert_pem, key_pem FROM signer.authorities WHERE org = $1", org)
            structlog.get_logger().info("certificate authority created", org=org)
        key = await asyncio.to_thread(ca.unlock, row["key_pem"].encode(), self._secret)
        self._authorities[org] = (row["cert_pem"], key)
        return self._authorities[org]

    async def credentials(self, conn: asyncpg.Connection, org: str, person: PersonRef) -> Credentials:
        """The person's signing credentials for the function they sign in, issued on first use."""
        cache_key = (org, person.id, person.title, person.name)
        if cache_key in self._credentials:
            return self._credentials[cache_key]
        root_pem, root_key = await self.authority(conn, org)
        row = await conn.fetchrow(
            "SELECT name, cert_pem, key_pem FROM signer.certificates WHERE org = $1 AND person_id = $2 AND title = $3",
            org,
            person.id,
            person.title,
        )
        if row is None or row["name"] != person.name:
            issued = await asyncio.to_thread(
                lambda: ca.issue_signer_certificate(
                    root_cert_pem=root_pem.encode(),
                    root_key=root_key,
                    organisation=self._organisation,
                    name=person.name,
                    title=person.title,
                    email=person.email,
                    secret=self._secret,
                )
            )
            row = await conn.fetchrow(
                "INSERT INTO signer.certificates (org, person_id, title, name, cert_pem, key_pem)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, person_id, title) DO UPDATE"
                " SET name = $4, cert_pem = $5, key_pem = $6, created_at = now() RETURNING name, cert_pem, key_pem",
                org,
                person.id,
                person.title,
                person.name,
                issued.cert_pem.decode(),
                issued.key_pem.decode(),
            )
        key = await asyncio.to_thread(ca.unlock, row["key_pem"].encode(), self._secret)
        credentials = Credentials(
            key_der=key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            cert_der=_der(row["cert_pem"]),
            chain_der=(_der(root_pem),),
        )
        self._credentials[cache_key] = credentials
        return credentials
