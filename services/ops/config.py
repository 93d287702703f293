from pydantic import Field

from shared.settings import Settings


class OpsSettings(Settings):
    """What the operator's read-only commands (`paraaf documents`, `trail`, `tail`) need beyond the administrator's URLs."""

    stuck_after: int = Field(default=5, ge=1)  # PARAAF_STUCK_AFTER (shared Settings), here at least 1
