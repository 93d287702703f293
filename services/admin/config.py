from shared.settings import Settings


class BrokerAdminError(RuntimeError):
    """The broker refused or could not be reached for administration."""


class AdminSettings(Settings):
    """What the setup commands need beyond the administrator's URLs."""

    organisation_name: str = "Paraaf demo city"  # as the signer's: the name `paraaf setup` registers PARAAF_ORG under
    broker_admin_api: str | None = None  # a remote broker's management API, http://USER:PASSWORD@HOST:15672/api
