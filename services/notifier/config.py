"""The notifier's settings (``PARAAF_*``); README.md's settings table describes each."""

from typing import Literal

from pydantic import Field, SecretStr

from shared.settings import Settings

__all__ = ["NotifierSettings"]


class NotifierSettings(Settings):
    notifier_port: int = 8084
    signer_internal_url: str = "http://127.0.0.1:8083"  # where the notifier asks the signer for a mail's link
    smtp_host: str | None = None  # unset: the local mail catcher of `paraaf run all` (127.0.0.1:1025)
    smtp_port: int = 1025
    smtp_from: str = "Paraaf <paraaf@localhost>"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    # 12 attempts, 1 minute doubling to at most an hour apart: a mail outlives ~6 hours of SMTP outage.
    mail_max_attempts: int = Field(default=12, ge=1)
    mail_retry_seconds: float = Field(default=60.0, gt=0)
    mail_retry_max_seconds: float = Field(default=3600.0, gt=0)
    mail_parallel: int = Field(default=8, ge=1)  # mails on their way at once
    reminder_after: int = Field(default=3, ge=1)  # working days (Mon-Fri) after the request
    reminder_every: int = Field(default=2, ge=1)  # working days between reminders
    reminder_max: int = Field(default=3, ge=0)
    due_after: int = Field(default=5, ge=1)  # working days; the due date a request shows when it names none
    operator_emails: str = ""  # comma-separated; who gets routing alerts
    operator_language: Literal["nl", "fr", "en"] = "nl"
    moved_notice_window_seconds: float = Field(default=120.0, ge=0)
    scheduler_seconds: float = Field(default=30.0, gt=0)
    digest_hour: int = Field(default=8, ge=0, le=23)  # local time (TIMEZONE) from which the day's digests go out

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(address.strip() for address in self.operator_emails.split(",") if address.strip())
