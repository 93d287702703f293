from pathlib import Path

from shared.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


class IntakeSettings(Settings):
    intake_port: int = 8081
    max_pdf_mb: float = 25.0
    max_decoded_mb: float = 256.0  # what a PDF's compressed streams may unpack to, all together
    pdf_check_seconds: float = 30.0
    pdf_check_mb: int = 1024  # memory of the process that checks one PDF
    pdf_check_workers: int = 2
    # Outcomes by webhook: how long a delivery is tried (then an incident), the first wait and the longest.
    webhook_retry_hours: float = 24.0
    webhook_first_retry_seconds: float = 10.0
    webhook_longest_retry_seconds: float = 3600.0
    webhook_timeout_seconds: float = 10.0
    webhook_poll_seconds: float = 1.0
    webhook_allow_http: bool = False  # as `paraaf sources add` takes it: plain http beyond this machine
