from pydantic import SecretStr

from services.signer.fonts import DEFAULT_FONT
from shared.settings import Settings


class SignerSettings(Settings):
    signer_port: int = 8083
    organisation_name: str = "Paraaf demo city"
    key_secret: SecretStr | None = None
    link_ttl_hours: int = 24 * 21
    signing_workers: int = 2
    render_workers: int = 1
    tsa_url: str | None = None
    stamp_font: str = DEFAULT_FONT
