"""What one test session names its own on servers shared with other sessions: broker users and database roles."""

import os

__all__ = ["SESSION_PREFIX"]

SESSION_PREFIX = f"paraaf_t{os.getpid()}"
