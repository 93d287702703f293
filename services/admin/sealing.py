"""``paraaf setup`` has the organisation's CA certify the audit's sealing key,
so a checkpoint is sealed with the organisation's key, not just the audit's.

The CA is the signer's (services/signer/keys.py): its private key is opened
here, in the setup process, with PARAAF_KEY_SECRET, and never leaves it —
the audit's secrets file receives only the sealing key's certificate and the
CA's root certificate (the copy ``paraaf audit verify`` trusts, kept outside
the database a superuser could rewrite). Run again, setup keeps a
certificate that still fits: the same key, the same root, not about to
expire. Without the signer's secret at hand (PARAAF_KEY_SECRET, or the one
a demo install keeps in DATA_DIR) setup certifies nothing rather than make a
secret of its own, which would lock the signer out of its CA.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from services.audit.seal import certificate_problem, load_sealing_key, public_key_of
from services.signer import ca
from services.signer.config import MIGRATIONS as SIGNER_MIGRATIONS
from services.signer.config import SignerSettings
from services.signer.hsm import token_config
from services.signer.keys import Keyring, key_secret
from shared.credentials import stored, write_identity
from shared.db import NotSetUp, open_database

__all__ = ["NoKeySecret", "certify_audit_seal", "issue_sealing_certificate"]

SEALING_YEARS = 3
RENEW_BEFORE = timedelta(days=30)


class NoKeySecret(NotSetUp):
    """The signer's secret, which opens the organisation's CA, is not at hand."""


def issue_sealing_certificate(
    *, root_cert_pem: str, root_key: ca.SigningKey, organisation: str, public_key: Ed25519PublicKey, now: datetime
) -> str:
    """A certificate for the audit's sealing key: signing only, no CA, at most as long as the root lasts."""
    root = x509.load_pem_x509_certificate(root_cert_pem.encode())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} audit log sealing"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    certificate = ca.sign_certificate(
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=365 * SEALING_YEARS), root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )  # digital signature and non-repudiation: a seal vouches for what it signs
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False),
        root_key,
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


async def _authority(settings: SignerSettings) -> tuple[str, ca.SigningKey]:
    """The organisation's root and its key, unlocked as the signer unlocks them (created if the signer has not yet)."""
    pool = await open_database(settings, "signer", migrations=SIGNER_MIGRATIONS)
    try:
        async with pool.acquire() as conn:
            keyring = Keyring(key_secret(settings), settings.organisation_name, token=token_config(settings))
            await keyring.unlock(conn)
            return await keyring.authority(conn, settings.org)
    finally:
        await pool.close()


def _still_fits(settings: SignerSettings, public_key: Ed25519PublicKey, now: datetime) -> bool:
    on_file = stored(settings, "audit")
    if not on_file.get("seal_cert") or not on_file.get("seal_root"):
        return False
    certificate = x509.load_pem_x509_certificate(on_file["seal_cert"].encode())
    root = x509.load_pem_x509_certificate(on_file["seal_root"].encode())
    return (
        public_key_of(certificate.public_key()) == public_key_of(public_key)  # type: ignore[arg-type]
        and certificate_problem(certificate, (root,), now + RENEW_BEFORE) is None
    )


async def certify_audit_seal(settings: SignerSettings, *, now: datetime | None = None) -> bool:
    """File the sealing key's certificate and the organisation's root with the audit's secrets; False when the
    certificate on file still fits and was kept."""
    now = now or datetime.now(UTC)
    pem = stored(settings, "audit").get("seal_key")
    if not pem:
        raise NotSetUp("the audit has no sealing key yet: run `paraaf db setup` first")
    public_key = load_sealing_key(pem).public_key()
    if settings.key_secret is None and not (Path(settings.data_dir) / "signer-key-secret").exists():
        raise NoKeySecret(
            "PARAAF_KEY_SECRET is not set here, and only the signer's secret opens the organisation's CA: run"
            " `paraaf setup` again with it set to certify the audit sealing key"
        )
    root_pem, root_key = await _authority(settings)
    if _still_fits(settings, public_key, now) and stored(settings, "audit")["seal_root"] == root_pem:
        return False
    certificate = issue_sealing_certificate(
        root_cert_pem=root_pem, root_key=root_key, organisation=settings.organisation_name, public_key=public_key, now=now
    )
    write_identity(settings, "audit", seal_cert=certificate, seal_root=root_pem)
    return True
