"""Sealed checkpoints of the audit chain: a record, signed with the
organisation's audit sealing key, that the chain's hash at entry ``seq`` was
``head_hash`` at ``sealed_at`` — and, when a time-stamping authority is set,
an RFC 3161 token over the same bytes, so the seal's time does not rest on
our own clock.

Why a key of the audit service's own, not the signer's CA key: whoever can
rewrite the log (a database superuser) must not be able to re-seal it, so
the key lives outside the database, in the audit service's secrets file
(``paraaf setup`` makes it, like the service's other credentials); and the
CA's private key stays with the signer (PARAAF_KEY_SECRET never reaches the
audit). What makes the seal the organisation's: ``paraaf setup`` has the
organisation's CA certify the sealing key, and every checkpoint carries
that certificate. ``paraaf audit verify`` then checks each checkpoint
against :class:`Trust`: its signature, that its certificate chains to the
organisation's root (the copy kept outside the database, or one the
operator names), and its timestamp token's own signature. Checkpoints
sealed before the key was certified carry no certificate; they count when
signed by the sealing key on file, as they always did.
"""

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.chain import Sealed

if TYPE_CHECKING:
    from pyhanko.sign.timestamps.api import TimeStamper

__all__ = [
    "Checkpoint",
    "Trust",
    "certificate_problem",
    "check_checkpoint",
    "load_certificates",
    "load_sealing_key",
    "new_sealing_key",
    "public_key_of",
    "seal",
]

_DOMAIN = b"paraaf audit checkpoint v1\n"


def new_sealing_key() -> str:
    """A fresh Ed25519 private key, PEM (what `paraaf setup` keeps in the audit's secrets file)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def load_sealing_key(text: str) -> Ed25519PrivateKey:
    """The key as PEM (the secrets file), or as the base64 of its 32 raw bytes (one line, for an environment
    variable such as docker-compose's PARAAF_AUDIT_SEAL_KEY)."""
    if "-----BEGIN" not in text:
        try:
            return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text.strip(), validate=True))
        except ValueError:
            raise ValueError("the audit sealing key is neither PEM nor the base64 of 32 raw Ed25519 bytes") from None
    key = serialization.load_pem_private_key(text.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the audit sealing key must be an Ed25519 key")
    return key


def public_key_of(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_certificates(pem: bytes | str) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM text (one or more)."""
    return tuple(x509.load_pem_x509_certificates(pem.encode() if isinstance(pem, str) else pem))


@dataclass(frozen=True)
class Trust:
    """What a checkpoint is checked against. ``roots``: the organisation's CA root(s) a checkpoint's certificate
    must chain to; ``key``: the sealing key on file (base64), what a checkpoint without a certificate must be
    signed with; ``tsa_roots``: when given, a timestamp token's signer must chain to one of them."""

    roots: tuple[x509.Certificate, ...] = ()
    key: str | None = None
    tsa_roots: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    sealed_at: datetime
    public_key: str  # base64 of the raw Ed25519 public key
    signature: str  # base64
    timestamp_token: str | None = None  # base64 DER of the RFC 3161 token over sha256(message)
    certificate: str | None = None  # PEM: the organisation's CA certifying public_key (none before setup gave one)

    def message(self) -> bytes:
        return _message(self.seq, self.head_hash, self.sealed_at)

    def sealed(self) -> Sealed:
        return Sealed(self.seq, self.head_hash, self.sealed_at)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "sealed_at": self.sealed_at.isoformat()}, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "Checkpoint":
        fields = json.loads(line)
        return cls(**{**fields, "sealed_at": datetime.fromisoformat(fields["sealed_at"])})


def _message(seq: int, head_hash: str, sealed_at: datetime) -> bytes:
    return _DOMAIN + f"{seq}\n{head_hash}\n{sealed_at.isoformat()}".encode()


async def seal(
    key: Ed25519PrivateKey,
    seq: int,
    head_hash: str,
    sealed_at: datetime,
    timestamper: "TimeStamper | None" = None,
    certificate: str | None = None,
) -> Checkpoint:
    """Sign the head; with a ``timestamper``, have a TSA stamp the same bytes too; ``certificate`` (the key's,
    from the organisation's CA) goes with it."""
    message = _message(seq, head_hash, sealed_at)
    token = None
    if timestamper is not None:
        stamped = await timestamper.async_timestamp(hashlib.sha256(message).digest(), "sha256")
        token = base64.b64encode(stamped.dump()).decode()
    signature = base64.b64encode(key.sign(message)).decode()
    return Checkpoint(seq, head_hash, sealed_at, public_key_of(key), signature, token, certificate)


async def check_checkpoint(checkpoint: Checkpoint, trust: Trust) -> str | None:
    """Why this checkpoint cannot be trusted, or None: signed over these very fields by a key the organisation's
    CA certified (or, without a certificate, by the sealing key on file), and its timestamp token, if any, over
    the same bytes and signed by its time-stamping authority."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint.public_key))
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return "has a signature that does not match its contents (forged or altered)"
    if why := _signer_problem(checkpoint, trust):
        return why
    if checkpoint.timestamp_token:
        return await _timestamp_problem(checkpoint, trust.tsa_roots)
    return None


def _signer_problem(checkpoint: Checkpoint, trust: Trust) -> str | None:
    if checkpoint.certificate is None or not trust.roots:
        if trust.key is not None and checkpoint.public_key != trust.key:
            return "is signed by a key that is not the audit sealing key"
        if checkpoint.certificate is None and trust.roots and trust.key is None:
            return "carries no certificate, and no audit sealing key is on file to check its key against"
        return None
    try:
        certificate = x509.load_pem_x509_certificate(checkpoint.certificate.encode())
    except ValueError:
        return "carries a certificate that cannot be read"
    certified = certificate.public_key()
    if not isinstance(certified, Ed25519PublicKey) or public_key_of(certified) != checkpoint.public_key:
        return "carries a certificate for another key than the one that signed it"
    return certificate_problem(certificate, trust.roots, checkpoint.sealed_at)


def certificate_problem(certificate: x509.Certificate, roots: tuple[x509.Certificate, ...], at: datetime) -> str | None:
    """Why ``certificate`` does not certify a sealing key of the organisation at ``at``, or None."""
    issuer = next((root for root in roots if _issued_by(certificate, root)), None)
    if issuer is None:
        return f"has a certificate not issued by the organisation's CA (issuer: {certificate.issuer.rfc4514_string()})"
    for cert, whose in ((certificate, "its certificate"), (issuer, "the organisation's CA root")):
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return (
                f"was sealed at {at.isoformat()}, outside the validity of {whose}"
                f" ({cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})"
            )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        end_entity = not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        usage, end_entity = None, False
    if usage is None or not usage.digital_signature or not end_entity:
        return "has a certificate that does not allow sealing (it must be an end-entity certificate for digital signatures)"
    return None


def _issued_by(certificate: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


async def _timestamp_problem(checkpoint: Checkpoint, tsa_roots: tuple[x509.Certificate, ...]) -> str | None:
    # Here, not at the top: pyHanko's validator is heavy, and `paraaf setup` and every other command import this module.
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    message = checkpoint.message()
    try:
        signed = cms.ContentInfo.load(base64.b64decode(checkpoint.timestamp_token or ""))["content"]
        if _imprint(signed) != hashlib.sha256(message).digest():
            return "has a timestamp token for other contents"
        context = ValidationContext(trust_roots=[_asn1(root) for root in tsa_roots]) if tsa_roots else None
        status = await validate_tst_signed_data(signed, context, lambda algorithm: hashlib.new(algorithm, message).digest())
    except (ValueError, TypeError, KeyError, SignatureValidationError) as exc:
        return f"has a timestamp token that cannot be validated ({exc})"
    if not (status["intact"] and status["valid"]):
        return "has a timestamp token whose signature does not match it (forged or altered)"
    if tsa_roots and status["trust_problem_indic"] is not None:
        who = status["signing_cert"].subject.human_friendly
        return f"has a timestamp token from a time-stamping authority not among the trusted ones ({who})"
    return None


def _asn1(certificate: x509.Certificate) -> "asn1_x509.Certificate":
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _imprint(signed: cms.SignedData) -> bytes:
    info = signed["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        return b""
    return info["message_imprint"]["hashed_message"].native
