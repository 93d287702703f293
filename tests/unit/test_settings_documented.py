"""Operators configure Paraaf from README's settings table: it must list every setting."""

import re
from pathlib import Path

from services.admin.config import AdminSettings
from services.audit.config import AuditSettings
from services.intake.config import IntakeSettings
from services.notifier.config import NotifierSettings
from services.ops.config import OpsSettings
from services.router.config import RouterSettings
from services.signer.config import SignerSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_row_in_the_readme() -> None:
    """Each PARAAF_* variable any service reads appears in README.md's settings table."""
    documented = set(re.findall(r"`(PARAAF_[A-Z0-9_]+)`", README.read_text()))
    settings = {
        f"PARAAF_{name.upper()}"
        for cls in (IntakeSettings, RouterSettings, SignerSettings, NotifierSettings, AuditSettings, AdminSettings, OpsSettings)
        for name in cls.model_fields
    }
    assert settings - documented == set()
