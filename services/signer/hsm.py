"""Keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests), when
PARAAF_PKCS11_MODULE is set: the organisation's CA key and the signers' keys
are generated in the token, marked sensitive and not extractable, and every
signature with them is made there. The database then holds, in place of a
wrapped key, a reference ``pkcs11:id=<hex>`` to the key's CKA_ID.

A process opens one session, logged in once, per token (:func:`session`);
PKCS#11 sessions are not for concurrent use, so calls on it are serialised.
Signing workers are spawned processes, each with its own session.
"""

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error

from services.signer.config import SignerSettings
from shared.settings import CannotStart

if TYPE_CHECKING:
    from pyhanko.sign.pkcs11 import PKCS11Signer

__all__ = ["REFERENCE", "TokenConfig", "TokenKey", "TokenUnavailable", "WrongKey", "generate", "is_reference", "pdf_signer", "token_config"]

REFERENCE = "pkcs11:id="
_LOCK = threading.RLock()  # one session per token and process, used by one thread at a time
_SESSIONS: dict["TokenConfig", pkcs11.Session] = {}


class TokenUnavailable(CannotStart):
    """The PKCS#11 token named by the settings cannot be used: module, token, slot or PIN is wrong."""


class WrongKey(ValueError):
    """A stored reference names a key in the token that belongs to something else."""


@dataclass(frozen=True)
class TokenConfig:
    """Where the keys are: a PKCS#11 module, a token (by label, else by slot) and its user PIN. Picklable, for workers."""

    module: str
    token_label: str | None = None
    slot: int | None = None
    pin: str = field(default="", repr=False)

    def describe(self) -> str:
        which = f"token {self.token_label!r}" if self.token_label else f"slot {self.slot}"
        return f"{which} of PKCS#11 module {self.module}"


def token_config(settings: SignerSettings) -> TokenConfig | None:
    """The token the settings name, or None for keys kept (encrypted) in the database."""
    if not settings.pkcs11_module:
        return None
    if not settings.pkcs11_token and settings.pkcs11_slot is None:
        raise TokenUnavailable("PARAAF_PKCS11_MODULE is set: set PARAAF_PKCS11_TOKEN (the token's label) or PARAAF_PKCS11_SLOT too")
    if settings.pkcs11_pin is not None:
        pin = settings.pkcs11_pin.get_secret_value()
    elif settings.pkcs11_pin_file is not None:
        try:
            pin = Path(settings.pkcs11_pin_file).read_text().strip()
        except OSError as exc:
            raise TokenUnavailable(f"PARAAF_PKCS11_PIN_FILE {settings.pkcs11_pin_file} cannot be read ({exc.strerror})") from None
    else:
        raise TokenUnavailable("PARAAF_PKCS11_MODULE is set: set PARAAF_PKCS11_PIN or PARAAF_PKCS11_PIN_FILE (the token's user PIN)")
    return TokenConfig(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_slot, pin)


def session(config: TokenConfig) -> pkcs11.Session:
    """This process's session on the token, logged in as its user (once: a second login would be refused)."""
    with _LOCK:
        if config not in _SESSIONS:
            _SESSIONS[config] = _open(config)
        return _SESSIONS[config]


def _open(config: TokenConfig) -> pkcs11.Session:
    try:
        lib = pkcs11.lib(config.module)
        if config.token_label:
            token = lib.get_token(token_label=config.token_label)
        else:
            token = next(s.get_token() for s in lib.get_slots(token_present=True) if s.slot_id == config.slot)
        return token.open(user_pin=config.pin, rw=True)
    except StopIteration:
        raise TokenUnavailable(f"no token in slot {config.slot} of PKCS#11 module {config.module}") from None
    except (PKCS11Error, RuntimeError, OSError) as exc:
        # python-pkcs11 says RuntimeError when the module cannot be loaded
        raise TokenUnavailable(f"cannot open {config.describe()}: {exc.__class__.__name__} {exc}".strip()) from None


def is_reference(stored: str) -> bool:
    return stored.startswith(REFERENCE)


@dataclass(frozen=True)
class TokenKey:
    """An RSA private key in the token, known by its CKA_ID; what it signs is signed in the token."""

    config: TokenConfig
    key_id: bytes

    @classmethod
    def at(cls, config: TokenConfig | None, reference: str, label: str) -> "TokenKey":
        """The key a row refers to, which must carry the row's label: a reference copied into another person's row
        does not open (as a wrapped key is bound to its row)."""
        if config is None:
            raise TokenUnavailable(
                "a signing key is in a PKCS#11 token, but PARAAF_PKCS11_MODULE is not set: set it (with the token and PIN)"
            )
        key = cls(config, bytes.fromhex(reference.removeprefix(REFERENCE)))
        with _LOCK:
            found = key._object(ObjectClass.PRIVATE_KEY).label
        if found != label:
            raise WrongKey(f"key {reference} in {config.describe()} is labelled {found!r}, not {label!r}")
        return key

    @property
    def reference(self) -> str:
        return REFERENCE + self.key_id.hex()

    def _object(self, kind: ObjectClass) -> pkcs11.Key:
        try:
            return session(self.config).get_key(object_class=kind, id=self.key_id)
        except pkcs11.NoSuchKey:
            raise TokenUnavailable(f"key {self.reference} is not in {self.config.describe()}") from None

    def public_key(self) -> RSAPublicKey:
        with _LOCK:
            public = self._object(ObjectClass.PUBLIC_KEY)
            modulus, exponent = public[Attribute.MODULUS], public[Attribute.PUBLIC_EXPONENT]
        return RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")).public_key()

    def sign_pkcs1_sha256(self, data: bytes) -> bytes:
        with _LOCK:
            return self._object(ObjectClass.PRIVATE_KEY).sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)


def generate(config: TokenConfig, label: str, bits: int) -> TokenKey:
    """A new RSA key pair in the token; the private key never leaves it (sensitive, not extractable)."""
    key_id = os.urandom(16)
    with _LOCK:
        session(config).generate_keypair(
            KeyType.RSA, bits, id=key_id, label=label, store=True,
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True},
        )
    return TokenKey(config, key_id)


@lru_cache(maxsize=1)
def _token_signer_class() -> type["PKCS11Signer"]:
    # Here, not at the top: only signing needs pyHanko, and the operator's `paraaf ca` commands import this module.
    from pyhanko.sign.pkcs11 import PKCS11Signer

    from shared.pyhanko_fast import ParsedSigningCertificate

    class TokenSigner(ParsedSigningCertificate, PKCS11Signer):
        """pyHanko's PKCS#11 signer with its signing-certificate attribute parsed (pyhanko_fast)."""

    return TokenSigner


@lru_cache(maxsize=512)
def pdf_signer(config: TokenConfig, key_id: bytes, cert_der: bytes, chain_der: tuple[bytes, ...]) -> "PKCS11Signer":
    """pyHanko's PKCS#11 signer over this worker's session, kept per key like the file keys' signers."""
    return _token_signer_class()(
        session(config), key_id=key_id, signing_cert=asn1_x509.Certificate.load(cert_der),
        ca_chain=[asn1_x509.Certificate.load(c) for c in chain_der],
    )
