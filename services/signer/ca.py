"""The internal certificate authority: one root per organisation, one
certificate per signer and function, and the root's certificate revocation
list. Pure crypto, no storage: keys.py encrypts the private keys before they
are stored and keeps the list of revoked certificates.

A signer certificate names where its CRL is published (a CRL distribution
point under PARAAF_PUBLIC_URL, served by the signer): validators that check
revocation, and the signer itself when it embeds validation data (PAdES B-LT),
find the list there.

A key is either a ``cryptography`` RSA key (file keys) or an
:class:`ExternalKey` that signs elsewhere (a key in an HSM, hsm.py): for
those, ``cryptography`` builds the certificate's to-be-signed part and the
external key signs it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol, runtime_checkable

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CRL_HOURS", "ExternalKey", "Issued", "Revoked", "SigningKey", "build_crl", "crl_path", "crl_url_of",
    "issue_signer_certificate", "new_authority", "sign_certificate", "unlock_legacy",
]


@runtime_checkable
class ExternalKey(Protocol):
    """An RSA private key held elsewhere (a PKCS#11 token) that signs with PKCS#1 v1.5 and SHA-256."""

    def public_key(self) -> rsa.RSAPublicKey: ...

    def sign_pkcs1_sha256(self, data: bytes) -> bytes: ...


SigningKey = rsa.RSAPrivateKey | ExternalKey


@lru_cache(maxsize=1)
def _stand_in() -> rsa.RSAPrivateKey:
    """Signs the to-be-signed part once so ``cryptography`` emits it; that signature is thrown away."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_certificate(builder: x509.CertificateBuilder, key: SigningKey) -> x509.Certificate:
    """The certificate ``builder`` describes, signed by ``key`` with sha256WithRSAEncryption."""
    if isinstance(key, rsa.RSAPrivateKey):
        return builder.sign(key, hashes.SHA256())
    tbs = asn1_x509.TbsCertificate.load(builder.sign(_stand_in(), hashes.SHA256()).tbs_certificate_bytes)
    signed = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": tbs["signature"], "signature_value": key.sign_pkcs1_sha256(tbs.dump())}
    )
    return x509.load_der_x509_certificate(signed.dump())

ROOT_YEARS = 20
SIGNER_YEARS = 3
CRL_HOURS = 24 * 7  # a CRL's nextUpdate: validators may cache it this long; a revocation is served at once regardless


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key: SigningKey


def unlock_legacy(key_pem: bytes, secret: bytes) -> rsa.RSAPrivateKey:
    """A key stored by earlier versions (PKCS#8, encrypted with the key secret itself)."""
    key = serialization.load_pem_private_key(key_pem, password=secret)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA key")
    return key


_KEY_USAGES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
    "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage with only ``allowed`` set."""
    return x509.KeyUsage(**{usage: usage in allowed for usage in _KEY_USAGES})


def _builder(subject: x509.Name, issuer: x509.Name, key: SigningKey, now: datetime, until: datetime) -> x509.CertificateBuilder:
    """A certificate for ``key``, valid from a few minutes ago (clocks differ) until ``until``."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def new_authority(organisation: str, *, key: ExternalKey | None = None, now: datetime | None = None) -> Issued:
    """A self-signed root for ``organisation``'s signers, with ``key`` (else a new RSA-3072 file key)."""
    now = now or datetime.now(UTC)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} Paraaf Root CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    cert = sign_certificate(
        _builder(name, name, key, now, now + timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True),
        key,
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), key)


def _signer_name(organisation: str, name: str, title: str) -> x509.Name:
    """CN = the person's name, title = their function (when they sign in one), O = the organisation."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if title:
        attributes.append(x509.NameAttribute(NameOID.TITLE, title))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def issue_signer_certificate(
    *,
    root_cert_pem: bytes,
    root_key: SigningKey,
    organisation: str,
    name: str,
    title: str,
    email: str,
    crl_url: str | None = None,
    key: ExternalKey | None = None,
    now: datetime | None = None,
) -> Issued:
    """A signing certificate: CN = the person's name, title = their function; ``crl_url`` where revocation is
    published; for ``key`` (else a new RSA-2048 file key)."""
    now = now or datetime.now(UTC)
    root = x509.load_pem_x509_certificate(root_cert_pem)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    until = min(now + timedelta(days=365 * SIGNER_YEARS), root.not_valid_after_utc)
    builder = (
        _builder(_signer_name(organisation, name, title), root.subject, key, now, until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature", "content_commitment"), critical=True)
        # poppler/NSS trusts document signers with emailProtection (STACK.md).
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
    )
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    cert = sign_certificate(builder, root_key)
    return Issued(cert.public_bytes(serialization.Encoding.PEM), key)


def crl_path(org: str) -> str:
    """Where the signer's HTTP service serves ``org``'s CRL."""
    return f"/ca/{org}.crl"


def crl_url_of(cert_pem: bytes) -> str | None:
    """The CRL distribution point a certificate names, or None (certificates issued before Paraaf published CRLs)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    return next((str(name.value) for point in points for name in point.full_name or ()), None)


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: datetime


def build_crl(root_cert_pem: bytes, root_key: SigningKey, revoked: Iterable[Revoked], *, now: datetime | None = None) -> bytes:
    """The root's CRL (DER), listing ``revoked``; valid from a few minutes ago (clocks differ) for CRL_HOURS."""
    now = now or datetime.now(UTC)
    root = x509.load_pem_x509_certificate(root_cert_pem)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(hours=CRL_HOURS))
        # Increasing with time, as RFC 5280 asks, without a counter to keep.
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at).build()
        )
    if isinstance(root_key, rsa.RSAPrivateKey):
        return builder.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    tbs = asn1_crl.TbsCertList.load(builder.sign(_stand_in(), hashes.SHA256()).tbs_certlist_bytes)
    signed = asn1_crl.CertificateList(
        {"tbs_cert_list": tbs, "signature_algorithm": tbs["signature"], "signature": root_key.sign_pkcs1_sha256(tbs.dump())}
    )
    return signed.dump()
