"""The signer's keyring: certificate authorities and signer certificates,
stored in the signer's schema with their private keys encrypted, decrypted
once and kept in memory.

A private key is stored encrypted with AES-256-GCM under a key-encryption
key derived from PARAAF_KEY_SECRET with scrypt (n=2^16, r=8, p=1: about
0.2 s and 64 MB, once per start), and bound to whose key it is (a stored
key cannot be moved to another person's row). The secret is the signer's
alone; a known placeholder or a short one is refused.

Revocation: :meth:`Keyring.revoke` moves a person's certificate to
``signer.revoked_certificates`` (their next signature gets a new one) and
:meth:`Keyring.crl` is the root's CRL over that table, built in-process, both
for the HTTP service that publishes it and for the signing workers that embed
it (PAdES B-LT). Certificates issued before CRLs were published name no
distribution point: they are reissued on their holder's next signature.

With PARAAF_PKCS11_MODULE set, new keys are made in a PKCS#11 token instead
(hsm.py) and a row holds a reference to its key there. Keys made before the
token was configured stay where they are (encrypted here) until reissued.
"""

import asyncio
import base64
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from services.signer import ca, hsm
from services.signer.config import SignerSettings
from shared.events import PersonRef
from shared.settings import CannotStart

__all__ = [
    "CERTIFICATE_COLUMNS", "CERTIFICATE_JOIN", "Credentials", "KeyWrap", "Keyring", "NothingToRevoke", "RevokedCertificate",
    "WeakSecret", "WrongSecret", "certificate_row", "check_secret", "key_secret",
]

MIN_SECRET_LENGTH = 16
PLACEHOLDERS = frozenset(
    {"change-me-in-production", "change-me", "changeme", "secret", "password", "paraaf", "test", "example", "replace-me"}
)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
_CHECK = b"paraaf key-encryption check"
_WRAPPED = "aesgcm:"
CRL_REBUILD_SECONDS = 3600  # an unchanged CRL is signed anew this often, so the one served is never near its nextUpdate


class NothingToRevoke(ValueError):
    """The person holds no current certificate (in that function) to revoke."""


@dataclass(frozen=True)
class RevokedCertificate:
    serial: int
    person_id: str
    title: str
    name: str
    revoked_at: datetime


class WeakSecret(CannotStart):
    """PARAAF_KEY_SECRET is a placeholder or too short to protect signing keys."""


class WrongSecret(CannotStart):
    """PARAAF_KEY_SECRET does not open the keys stored in this database."""


def check_secret(secret: str) -> bytes:
    if secret.strip().lower() in PLACEHOLDERS or len(secret) < MIN_SECRET_LENGTH:
        raise WeakSecret(
            f"PARAAF_KEY_SECRET is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; set a long random"
            " secret (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and keep it safe"
        )
    return secret.encode()


def key_secret(settings: SignerSettings) -> bytes:
    """PARAAF_KEY_SECRET, or (for a demo install) a secret kept in DATA_DIR."""
    if settings.key_secret is not None:
        return check_secret(settings.key_secret.get_secret_value())
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
    return check_secret(path.read_text().strip())


class KeyWrap:
    """AES-256-GCM under a key derived from the secret with scrypt."""

    def __init__(self, kek: bytes) -> None:
        self._aead = AESGCM(kek)

    @classmethod
    def derive(cls, secret: bytes, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> "KeyWrap":
        return cls(Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret))

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], context.encode())

    def wrap(self, key: RSAPrivateKey, context: str) -> str:
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return _WRAPPED + base64.b64encode(self.seal(der, context)).decode()

    def unwrap(self, stored: str, context: str) -> RSAPrivateKey:
        key = serialization.load_der_private_key(self.open(base64.b64decode(stored.removeprefix(_WRAPPED)), context), None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("expected an RSA key")
        return key


@dataclass(frozen=True)
class Credentials:
    """What a signing worker needs, as bytes: key, certificate and its chain (DER); for a key in a token,
    no key but where it is."""

    key_der: bytes
    cert_der: bytes
    chain_der: tuple[bytes, ...]
    token: hsm.TokenConfig | None = None
    token_key_id: bytes | None = None


def _der(cert_pem: str) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)


def _authority_context(org: str) -> str:
    return f"authority:{org}"


def _certificate_context(org: str, person_id: str, title: str) -> str:
    return f"certificate:{org}:{person_id}:{title}"


def _token_label(context: str) -> str:
    return f"paraaf {context}"


async def _derive(secret: bytes, row: asyncpg.Record) -> KeyWrap:
    return await asyncio.to_thread(KeyWrap.derive, secret, row["salt"], row["n"], row["r"], row["p"])


_READ = object()  # Keyring.credentials reads the person's certificate row itself

# The row Keyring.credentials reads, joined to a statement that has the signing request as ``r`` (its signer's
# function: ``title``, "" when none), as columns cert_name, cert_pem and cert_key_pem.
CERTIFICATE_JOIN = (
    " LEFT JOIN signer.certificates c ON c.org = r.org AND c.person_id = r.signer->>'id'"
    " AND c.title = coalesce(r.signer->>'title', '')"
)
CERTIFICATE_COLUMNS = ", c.name AS cert_name, c.cert_pem, c.key_pem AS cert_key_pem"


def certificate_row(row: Mapping[str, Any]) -> dict[str, str] | None:
    """The certificate row of :data:`CERTIFICATE_COLUMNS` as Keyring.credentials takes it (``stored``)."""
    if row["cert_pem"] is None:
        return None
    return {"name": row["cert_name"], "cert_pem": row["cert_pem"], "key_pem": row["cert_key_pem"]}


class Keyring:
    def __init__(
        self, secret: bytes, organisation: str, public_url: str | None = None, *, token: hsm.TokenConfig | None = None
    ) -> None:
        self._secret = secret
        self._organisation = organisation
        self._public_url = public_url.rstrip("/") if public_url else None  # None: certificates name no CRL (tests of other things)
        self._token = token
        self._wrap: KeyWrap | None = None
        self._authorities: dict[str, tuple[str, ca.SigningKey]] = {}
        self._credentials: dict[str, Credentials] = {}  # by certificate PEM: a reissued certificate is a new entry
        self._crl_urls: dict[str, str | None] = {}  # the CRL each certificate names, by its PEM (a parse each call otherwise)
        self._handed_out: dict[tuple[str, str, str], str] = {}  # (org, person, title) -> the name credentials() was given
        self._crls: dict[str, tuple[frozenset[int], float, bytes]] = {}

    @property
    def _keys(self) -> KeyWrap:
        if self._wrap is None:
            raise RuntimeError("the keyring is locked: call unlock() at start-up")
        return self._wrap

    async def unlock(self, conn: asyncpg.Connection) -> None:
        """Derive the key-encryption key (once; the first start chooses its salt) and check the secret opens it.
        Keys stored by earlier versions are encrypted anew on the way."""
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO signer.key_encryption (id, salt, n, r, p, check_value) VALUES (1, $1, $2, $3, $4, '')"
                " ON CONFLICT DO NOTHING",
                os.urandom(16),
                SCRYPT_N,
                SCRYPT_R,
                SCRYPT_P,
            )
            row = await conn.fetchrow("SELECT * FROM signer.key_encryption WHERE id = 1 FOR UPDATE")
            wrap = await _derive(self._secret, row)
            if not row["check_value"]:
                await conn.execute("UPDATE signer.key_encryption SET check_value = $1", wrap.seal(_CHECK, "check"))
            else:
                try:
                    wrap.open(row["check_value"], "check")
                except InvalidTag:
                    raise WrongSecret("PARAAF_KEY_SECRET does not open the signing keys stored in this database") from None
            await self._rewrap_legacy(conn, wrap)
        self._wrap = wrap

    async def _rewrap_legacy(self, conn: asyncpg.Connection, wrap: KeyWrap) -> None:
        for row in await conn.fetch("SELECT org, key_pem FROM signer.authorities WHERE key_pem LIKE '-----BEGIN%'"):
            key = await asyncio.to_thread(ca.unlock_legacy, row["key_pem"].encode(), self._secret)
            await conn.execute(
                "UPDATE signer.authorities SET key_pem = $2 WHERE org = $1", row["org"], wrap.wrap(key, _authority_context(row["org"]))
            )
        for row in await conn.fetch(
            "SELECT org, person_id, title, key_pem FROM signer.certificates WHERE key_pem LIKE '-----BEGIN%'"
        ):
            key = await asyncio.to_thread(ca.unlock_legacy, row["key_pem"].encode(), self._secret)
            await conn.execute(
                "UPDATE signer.certificates SET key_pem = $4 WHERE org = $1 AND person_id = $2 AND title = $3",
                row["org"],
                row["person_id"],
                row["title"],
                wrap.wrap(key, _certificate_context(row["org"], row["person_id"], row["title"])),
            )

    async def rotate(self, conn: asyncpg.Connection, new_secret: bytes) -> int:
        """Encrypt every stored key under ``new_secret`` (one transaction); returns how many keys."""
        new = KeyWrap.derive(new_secret, salt := os.urandom(16))
        count = 0
        async with conn.transaction():
            for row in await conn.fetch(f"SELECT org, key_pem FROM signer.authorities WHERE key_pem LIKE '{_WRAPPED}%' FOR UPDATE"):
                context = _authority_context(row["org"])
                key = self._keys.unwrap(row["key_pem"], context)
                await conn.execute("UPDATE signer.authorities SET key_pem = $2 WHERE org = $1", row["org"], new.wrap(key, context))
                count += 1
            for row in await conn.fetch(
                f"SELECT org, person_id, title, key_pem FROM signer.certificates WHERE key_pem LIKE '{_WRAPPED}%' FOR UPDATE"
            ):
                context = _certificate_context(row["org"], row["person_id"], row["title"])
                key = self._keys.unwrap(row["key_pem"], context)
                await conn.execute(
                    "UPDATE signer.certificates SET key_pem = $4 WHERE org = $1 AND person_id = $2 AND title = $3",
                    row["org"],
                    row["person_id"],
                    row["title"],
                    new.wrap(key, context),
                )
                count += 1
            await conn.execute(
                "UPDATE signer.key_encryption SET salt = $1, n = $2, r = $3, p = $4, check_value = $5",
                salt,
                SCRYPT_N,
                SCRYPT_R,
                SCRYPT_P,
                new.seal(_CHECK, "check"),
            )
        self._secret, self._wrap = new_secret, new
        return count

    def _stored(self, issued: ca.Issued, context: str) -> str:
        """What a row holds for ``issued``'s key: where it is in the token, else the key wrapped."""
        if isinstance(issued.key, hsm.TokenKey):
            return issued.key.reference
        return self._keys.wrap(issued.key, context)

    def _opened(self, stored: str, context: str) -> ca.SigningKey:
        if hsm.is_reference(stored):
            return hsm.TokenKey.at(self._token, stored, _token_label(context))
        return self._keys.unwrap(stored, context)

    def _new_key(self, context: str, bits: int) -> hsm.TokenKey | None:
        """A new key in the token, labelled for its row, or None when keys are file keys (ca.py makes one)."""
        return hsm.generate(self._token, _token_label(context), bits) if self._token else None

    async def organisation(self, conn: asyncpg.Connection, org: str) -> str:
        """The name certificates of ``org`` carry (O=): its registered name (`paraaf org create`), else PARAAF_ORGANISATION_NAME."""
        if not await conn.fetchval("SELECT to_regclass('access.orgs') IS NOT NULL"):  # a signer store without the access schema
            return self._organisation
        return await conn.fetchval("SELECT name FROM access.orgs WHERE key = $1", org) or self._organisation

    async def authority(self, conn: asyncpg.Connection, org: str) -> tuple[str, ca.SigningKey]:
        """The org's root (certificate PEM, key), created on first use."""
        if org in self._authorities:
            return self._authorities[org]
        row = await conn.fetchrow("SELECT cert_pem, key_pem FROM signer.authorities WHERE org = $1", org)
        if row is None:
            organisation = await self.organisation(conn, org)
            issued = await asyncio.to_thread(
                lambda: ca.new_authority(organisation, key=self._new_key(_authority_context(org), 3072))
            )
            await conn.execute(
                "INSERT INTO signer.authorities (org, cert_pem, key_pem) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                org,
                issued.cert_pem.decode(),
                self._stored(issued, _authority_context(org)),
            )
            row = await conn.fetchrow("SELECT cert_pem, key_pem FROM signer.authorities WHERE org = $1", org)
            structlog.get_logger().info("certificate authority created", org=org, in_token=self._token is not None)
        key = self._opened(row["key_pem"], _authority_context(org))
        self._authorities[org] = (row["cert_pem"], key)
        return self._authorities[org]

    def crl_url(self, org: str) -> str | None:
        return f"{self._public_url}{ca.crl_path(org)}" if self._public_url else None

    def _current(self, row: asyncpg.Record | None, org: str, person: PersonRef) -> bool:
        """Whether a stored certificate may still sign for ``person``: same name, and naming this installation's CRL."""
        if row is None or row["name"] != person.name:
            return False
        cert_pem = row["cert_pem"]
        if cert_pem not in self._crl_urls:
            self._crl_urls[cert_pem] = ca.crl_url_of(cert_pem.encode())
        return self._crl_urls[cert_pem] == self.crl_url(org)

    async def credentials(
        self, conn: asyncpg.Connection, org: str, person: PersonRef, *, stored: Mapping[str, str] | None | object = _READ
    ) -> Credentials:
        """The person's signing credentials for the function they sign in, issued on first use, and again when
        theirs was revoked, was made under another name, or names no (or another) CRL.

        The row is read on every call (one indexed read): a certificate revoked by `paraaf ca revoke` in
        another process is never used again. ``stored``: that row (name, cert_pem, key_pem; None: there is none)
        as the caller read it in this transaction a moment ago, in a statement of its own (CERTIFICATE_JOIN)."""
        root_pem, root_key = await self.authority(conn, org)
        context = _certificate_context(org, person.id, person.title)
        row = stored if stored is not _READ else await conn.fetchrow(
            "SELECT name, cert_pem, key_pem FROM signer.certificates WHERE org = $1 AND person_id = $2 AND title = $3",
            org,
            person.id,
            person.title,
        )
        if not self._current(row, org, person):
            row = await self._issue(conn, org, person, root_pem, root_key, replacing=row["cert_pem"] if row else None)
        if row["cert_pem"] in self._credentials:
            return self._credentials[row["cert_pem"]]
        key = self._opened(row["key_pem"], context)
        if isinstance(key, hsm.TokenKey):
            credentials = Credentials(
                b"", _der(row["cert_pem"]), (_der(root_pem),), token=key.config, token_key_id=key.key_id
            )
        else:
            credentials = Credentials(
                key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                _der(row["cert_pem"]),
                (_der(root_pem),),
            )
        self._credentials[row["cert_pem"]] = credentials
        self._handed_out[(org, person.id, person.title)] = person.name
        return credentials

    def handed_out(self, org: str, person: PersonRef) -> bool:
        """Whether this process handed out the person's credentials in this function under this name before. Only
        to spare preparing them again: a certificate revoked since in another process is not known here (signing
        calls :meth:`credentials`, which reads the row every time)."""
        return self._handed_out.get((org, person.id, person.title)) == person.name

    async def revoke(
        self, conn: asyncpg.Connection, org: str, person_id: str, *, title: str | None, reason: str, by: str, at: datetime
    ) -> list[RevokedCertificate]:
        """Revoke the person's current certificate(s) (in one function, or in all when ``title`` is None), in one
        transaction: they leave the keyring and join the CRL. Raises NothingToRevoke when there is none."""
        async with conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM signer.certificates WHERE org = $1 AND person_id = $2 AND ($3::text IS NULL OR title = $3)"
                " RETURNING person_id, title, name, cert_pem",
                org,
                person_id,
                title,
            )
            for r in rows:
                self._handed_out.pop((org, r["person_id"], r["title"]), None)
            if not rows:
                function = f" as `{title}`" if title is not None else ""
                raise NothingToRevoke(f"`{person_id}` holds no certificate{function} in organisation `{org}`")
            revoked = [
                RevokedCertificate(
                    x509.load_pem_x509_certificate(r["cert_pem"].encode()).serial_number, r["person_id"], r["title"], r["name"], at
                )
                for r in rows
            ]
            await conn.executemany(
                "INSERT INTO signer.revoked_certificates (org, serial, person_id, title, name, revoked_at, reason, revoked_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                [(org, r.serial, r.person_id, r.title, r.name, r.revoked_at, reason, by) for r in revoked],
            )
        return revoked

    async def crl(self, conn: asyncpg.Connection, org: str) -> bytes:
        """The root's CRL (DER) as it stands now: rebuilt when a certificate was revoked, else at most hourly."""
        rows = await conn.fetch("SELECT serial, revoked_at FROM signer.revoked_certificates WHERE org = $1", org)
        revoked = [ca.Revoked(int(r["serial"]), r["revoked_at"]) for r in rows]
        serials = frozenset(r.serial for r in revoked)
        cached = self._crls.get(org)
        if cached is not None and cached[0] == serials and time.monotonic() - cached[1] < CRL_REBUILD_SECONDS:
            return cached[2]
        root_pem, root_key = await self.authority(conn, org)
        der = await asyncio.to_thread(ca.build_crl, root_pem.encode(), root_key, revoked)
        self._crls[org] = (serials, time.monotonic(), der)
        return der

    async def _issue(
        self, conn: asyncpg.Connection, org: str, person: PersonRef, root_pem: str, root_key: ca.SigningKey,
        *, replacing: str | None,
    ) -> asyncpg.Record:
        """A new certificate for the person (replacing ``replacing``, one made under another name), stored with its
        key wrapped (or, in a token, where its key is). Should another signer process have stored one meanwhile
        (two of her documents signed at once), that one is hers and this one is never used: a certificate that
        signed must stay on file, where `paraaf ca revoke` finds it."""
        organisation = await self.organisation(conn, org)
        issued = await asyncio.to_thread(
            lambda: ca.issue_signer_certificate(
                root_cert_pem=root_pem.encode(),
                root_key=root_key,
                organisation=organisation,
                name=person.name,
                title=person.title,
                email=person.email,
                crl_url=self.crl_url(org),
                key=self._new_key(_certificate_context(org, person.id, person.title), 2048),
            )
        )
        stored = await conn.fetchrow(
            "INSERT INTO signer.certificates (org, person_id, title, name, cert_pem, key_pem)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, person_id, title) DO UPDATE"
            " SET name = $4, cert_pem = $5, key_pem = $6, created_at = now()"
            " WHERE signer.certificates.cert_pem IS NOT DISTINCT FROM $7 RETURNING name, cert_pem, key_pem",
            org,
            person.id,
            person.title,
            person.name,
            issued.cert_pem.decode(),
            self._stored(issued, _certificate_context(org, person.id, person.title)),
            replacing,
        )
        if stored is None:
            structlog.get_logger().info("certificate issued by another signer process meanwhile; using it", person_id=person.id)
            stored = await conn.fetchrow(
                "SELECT name, cert_pem, key_pem FROM signer.certificates WHERE org = $1 AND person_id = $2 AND title = $3",
                org, person.id, person.title,
            )
        return stored
