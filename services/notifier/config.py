from pydantic import SecretStr

from shared.settings import Settings


class NotifierSettings(Settings):
    notifier_port: int = 8084
    smtp_host: str | None = None  # unset: the local mail catcher of `paraaf run all` (127.0.0.1:1025)
    smtp_port: int = 1025
    smtp_from: str = "Paraaf <paraaf@localhost>"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    mail_max_attempts: int = 8
