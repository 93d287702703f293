from shared.settings import Settings


class BrokerAdminError(RuntimeError):
    """The broker refused or could not be reached for administration."""


class AdminSettings(Settings):
    """What the setup commands need beyond the administrator's URLs."""

    broker_admin_api: str | None = None  # a remote broker's management API, http://USER:PASSWORD@HOST:15672/api
