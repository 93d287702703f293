from pathlib import Path
from typing import Literal

from asn1crypto import pem as asn1_pem
from pydantic import Field, SecretStr

from shared.settings import CannotStart, Settings

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian: fonts-dejavu-core


class SignerSettings(Settings):
    signer_port: int = 8083
    organisation_name: str = "Paraaf demo city"
    key_secret: SecretStr | None = None
    # Keys in a PKCS#11 token (HSM) instead of the database: the module, the token (label, else slot), its user PIN.
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_slot: int | None = None
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    download_ttl_hours: int = Field(default=24 * 7, ge=1)
    signing_workers: int = 2
    render_workers: int = 1
    render_seconds: float = Field(default=20.0, gt=0)
    render_mb: int = Field(default=1024, gt=0)
    tsa_url: str | None = None
    tsa_roots: Path | None = None  # PEM: the TSA's root certificate(s), trusted for its timestamps by `paraaf verify`
    stamp_font: str = DEFAULT_FONT
    verify_max_mb: float = Field(default=64.0, gt=0)
    verify_seconds: float = Field(default=30.0, gt=0)
    verify_per_minute: float = Field(default=12.0, gt=0)
    # The public check page (/check): wrong code-and-secret pairs per client address and for everyone, per window.
    check_per_address: int = Field(default=10, ge=1)
    check_overall: int = Field(default=1000, ge=1)
    check_window_minutes: int = Field(default=15, ge=1)
    # The portal's sign-in: an OpenID Connect provider (all three set), else one-time links by mail.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_claim: str = "email"  # the ID token claim that names the person
    oidc_match: Literal["email", "id"] = "email"  # what in the directory that claim is compared with
    session_idle_minutes: int = Field(default=30, ge=1)
    session_hours: float = Field(default=10.0, gt=0)
    upload_max_mb: float = Field(default=25.0, gt=0, le=34.0)  # as intake's PARAAF_MAX_PDF_MB; base64 in one message stays under the broker's 48 MiB

    def tsa_roots_der(self) -> tuple[bytes, ...]:
        """The certificates in PARAAF_TSA_ROOTS (DER); none when it is unset."""
        if self.tsa_roots is None:
            return ()
        try:
            pem = self.tsa_roots.read_bytes()
        except OSError as exc:
            raise CannotStart(f"PARAAF_TSA_ROOTS: cannot read {self.tsa_roots} ({exc.strerror})") from None
        found = tuple(der for _, _, der in asn1_pem.unarmor(pem, multiple=True)) if asn1_pem.detect(pem) else ()
        if not found:
            raise CannotStart(f"PARAAF_TSA_ROOTS: {self.tsa_roots} holds no PEM certificate")
        return found

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)
