from pydantic import Field, SecretStr

from services.signer.fonts import DEFAULT_FONT
from shared.settings import Settings


class SignerSettings(Settings):
    signer_port: int = 8083
    organisation_name: str = "Paraaf demo city"
    key_secret: SecretStr | None = None
    link_ttl_hours: int = 24 * 21
    download_ttl_hours: int = Field(default=24 * 7, ge=1)
    signing_workers: int = 2
    render_workers: int = 1
    render_seconds: float = Field(default=20.0, gt=0)
    render_mb: int = Field(default=1024, gt=0)
    tsa_url: str | None = None
    stamp_font: str = DEFAULT_FONT
    verify_max_mb: float = Field(default=64.0, gt=0)
    verify_seconds: float = Field(default=30.0, gt=0)
    verify_per_minute: float = Field(default=12.0, gt=0)
