from shared.settings import Settings


class AuditSettings(Settings):
    audit_port: int = 8085
