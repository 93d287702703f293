"""Sealed checkpoints of the audit chain: a record, signed with the
organisation's audit sealing key, that the chain's hash at entry ``seq`` was
``head_hash`` at ``sealed_at`` — and, when a time-stamping authority is set,
an RFC 3161 token over the same bytes, so the seal's time does not rest on
our own clock.

Why a key of the audit service's own, not the signer's CA key: whoever can
rewrite the log (a database superuser) must not be able to re-seal it, so
the key lives outside the database, in the audit service's secrets file
(``paraaf setup`` makes it, like the service's other credentials); and the
signer's CA key stays the signer's alone (PARAAF_KEY_SECRET never leaves it).
The checkpoint carries the public key, and ``paraaf audit verify`` trusts
only the public half of the key on file — a checkpoint signed by any other
key is reported, however well it is signed.
"""

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from asn1crypto import cms, tsp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pyhanko.sign.timestamps.api import TimeStamper

from services.audit.chain import Sealed

__all__ = ["Checkpoint", "check_checkpoint", "load_sealing_key", "new_sealing_key", "public_key_of", "seal"]

_DOMAIN = b"paraaf audit checkpoint v1\n"


def new_sealing_key() -> str:
    """A fresh Ed25519 private key, PEM (what `paraaf setup` keeps in the audit's secrets file)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def load_sealing_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the audit sealing key must be an Ed25519 key")
    return key


def public_key_of(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    sealed_at: datetime
    public_key: str  # base64 of the raw Ed25519 public key
    signature: str  # base64
    timestamp_token: str | None = None  # base64 DER of the RFC 3161 token over sha256(message)

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
    key: Ed25519PrivateKey, seq: int, head_hash: str, sealed_at: datetime, timestamper: TimeStamper | None = None
) -> Checkpoint:
    """Sign the head; with a ``timestamper``, have a TSA stamp the same bytes too."""
    message = _message(seq, head_hash, sealed_at)
    token = None
    if timestamper is not None:
        stamped = await timestamper.async_timestamp(hashlib.sha256(message).digest(), "sha256")
        token = base64.b64encode(stamped.dump()).decode()
    signature = base64.b64encode(key.sign(message)).decode()
    return Checkpoint(seq, head_hash, sealed_at, public_key_of(key), signature, token)


def check_checkpoint(checkpoint: Checkpoint, trusted_key: str | None) -> str | None:
    """Why this checkpoint cannot be trusted, or None: signed by the trusted key, over these very fields,
    and its timestamp token (if any) over the same bytes. Checking the TSA's own signature and certificate
    is left to the TSA's validation tools."""
    if trusted_key is not None and checkpoint.public_key != trusted_key:
        return "is signed by a key that is not the audit sealing key"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint.public_key))
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return "has a signature that does not match its contents (forged or altered)"
    if checkpoint.timestamp_token and _imprint(checkpoint.timestamp_token) != hashlib.sha256(checkpoint.message()).digest():
        return "has a timestamp token for other contents"
    return None


def _imprint(token: str) -> bytes:
    signed = cms.ContentInfo.load(base64.b64decode(token))["content"]
    info = signed["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        return b""
    return info["message_imprint"]["hashed_message"].native
