"""Signing material for tests, made with Paraaf's own certificate authority
code (services.signer.ca), with file keys or keys in a PKCS#11 token, and a
way to tamper with a signed PDF."""

import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.signer import ca, hsm
from services.signer.pades import SigningJob

__all__ = ["SigningCity", "flip_signed_byte"]

@dataclass
class SigningCity:
    """A city's root and one certificate per signer, as the signer service would issue them; with ``token``,
    every key is made in that PKCS#11 token (and a job's key stays there)."""

    organisation: str = "Stad Testegem"
    crl_url: str | None = None  # the CRL distribution point its certificates name
    token: hsm.TokenConfig | None = None
    root_pem: bytes = b""
    _root_key: object = None
    _credentials: dict[tuple[str, str], tuple[bytes, bytes, tuple[bytes, ...]]] = field(default_factory=dict)
    _token_keys: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def _new_key(self, label: str, bits: int) -> hsm.TokenKey | None:
        return hsm.generate(self.token, label, bits) if self.token else None

    def __post_init__(self) -> None:
        root = ca.new_authority(self.organisation, key=self._new_key(f"test ca {self.organisation}", 3072))
        self.root_pem = root.cert_pem
        self._root_key = root.key

    def credentials(self, name: str, title: str = "") -> tuple[bytes, bytes, tuple[bytes, ...]]:
        """(key DER, certificate DER, chain DERs) for ``name`` acting as ``title``; no key DER for a key in the token."""
        if (name, title) not in self._credentials:
            issued = ca.issue_signer_certificate(
                root_cert_pem=self.root_pem,
                root_key=self._root_key,
                organisation=self.organisation,
                name=name,
                title=title,
                email="",
                crl_url=self.crl_url,
                key=self._new_key(f"test {name} {title}", 2048),
            )
            key = issued.key
            der = serialization.Encoding.DER
            if isinstance(key, hsm.TokenKey):
                self._token_keys[(name, title)] = key.key_id
            self._credentials[(name, title)] = (
                b"" if isinstance(key, hsm.TokenKey)
                else key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(der),
                (x509.load_pem_x509_certificate(self.root_pem).public_bytes(der),),
            )
        return self._credentials[(name, title)]

    def crl(self) -> bytes:
        """The root's CRL (DER), revoking nothing."""
        return ca.build_crl(self.root_pem, self._root_key, [])  # type: ignore[arg-type]

    def job(self, pdf: bytes, number: int, name: str, title: str = "", **options: object) -> SigningJob:
        key, cert, chain = self.credentials(name, title)
        defaults = {"stamp_text": f"{name}\n{title}", "signer_name": name, "reason": "Ondertekend"}
        return SigningJob(
            pdf=pdf, key_der=key, cert_der=cert, chain_der=chain, number=number, token=self.token,
            token_key_id=self._token_keys.get((name, title)), **{**defaults, **options},
        )


def flip_signed_byte(pdf: bytes) -> bytes:
    """The PDF with one byte changed inside the first signature's signed range (in the page text)."""
    first_range = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)", pdf)
    assert first_range is not None, "the PDF holds no signature"
    start, length = int(first_range.group(1)), int(first_range.group(2))
    position = pdf.index(b"Tj", start, start + length) - 3  # a letter of the first line of text
    return pdf[:position] + bytes([pdf[position] ^ 0x01]) + pdf[position + 1 :]
