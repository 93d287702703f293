from shared.settings import Settings


class BrokerAdminError(RuntimeError):
    """The broker refused or could not be reached for administration."""


class AdminSettings(Settings):
    """What the setup commands need beyond the administrator's URLs."""

    organisation_name: str = "Paraaf demo city"  # as the signer's: the name `paraaf setup` registers PARAAF_ORG under
    # `paraaf sources add --webhook http://...` to another host: an operator's deliberate choice (a TLS proxy beside
    # the receiver, say); off, only https and this machine's own http are taken.
    webhook_allow_http: bool = False
    broker_admin_api: str | None = None  # a remote broker's management API, http://USER:PASSWORD@HOST:15672/api
