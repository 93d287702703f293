from shared.settings import Settings


class IntakeSettings(Settings):
    intake_port: int = 8081
    max_pdf_mb: float = 25.0
