"""What one test session names its own on servers shared with other sessions (broker users and database roles),
and how it reaches the broker's administration."""

import os

__all__ = ["MANAGEMENT_API", "SESSION_PREFIX"]

SESSION_PREFIX = f"paraaf_t{os.getpid()}"
# How tests set up their brokers: as for a remote broker, through the management API (faster than
# rabbitmqctl, which `paraaf setup` uses on this machine and which the CLI tests go through).
# PARAAF_TEST_MANAGEMENT_API: another broker's (with PARAAF_TEST_AMQP_URL), e.g. a node of one's own beside a shared one.
MANAGEMENT_API = os.environ.get("PARAAF_TEST_MANAGEMENT_API", "http://guest:guest@127.0.0.1:15672/api")
