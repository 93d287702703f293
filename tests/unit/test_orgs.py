"""The organisation registry's pure rules: keys, portal URLs, and which organisation a Host is."""

import pytest

from services.signer.domain import Links
from shared.orgs import OrgPortals, check_key, check_portal_url, portal_host


def test_keys_are_short_lower_case_names() -> None:
    """`aalst`, `stad-gent` and `default` are keys; capitals, spaces, one letter or a leading dash are refused."""
    for good in ("aalst", "stad-gent", "default", "ocmw_aalst"):
        assert check_key(good) == good
    for bad in ("Aalst", "stad gent", "a", "-aalst", "x" * 41):
        with pytest.raises(ValueError, match="is not an organisation key"):
            check_key(bad)


def test_a_portal_is_a_host_without_a_path_and_its_host_is_what_a_browser_sends() -> None:
    """The scheme's own port is left out of the Host; another port stays; a path is refused."""
    assert check_portal_url("https://Aalst.Paraaf.example/") == "https://Aalst.Paraaf.example"
    assert portal_host("https://Aalst.Paraaf.example") == "aalst.paraaf.example"
    assert portal_host("https://aalst.paraaf.example:443") == "aalst.paraaf.example"
    assert portal_host("http://127.0.0.1:8090") == "127.0.0.1:8090"
    with pytest.raises(ValueError, match="no path"):
        check_portal_url("https://paraaf.example/aalst")


async def test_a_host_is_its_organisations_and_any_other_host_the_installations_own() -> None:
    """Registered hosts map to their organisation (case-insensitively); an unknown or missing Host is PARAAF_ORG's; links follow."""

    class Registry:
        async def fetch(self, _sql: str) -> list[dict]:
            return [{"key": "aalst", "name": "Stad Aalst", "portal_url": "https://aalst.paraaf.example/"},
                    {"key": "default", "name": "Demo", "portal_url": None}]

    portals = OrgPortals("default", "http://127.0.0.1:8083/")
    await portals.refresh(Registry())  # type: ignore[arg-type]
    assert portals.org_at("AALST.paraaf.example") == "aalst"
    assert portals.org_at("gent.paraaf.example") == "default" and portals.org_at(None) == "default"
    assert portals.name_of("aalst") == "Stad Aalst"
    links = Links("http://127.0.0.1:8083", ttl=None, clock=None, portal_of=portals.url_of)  # type: ignore[arg-type]
    assert links.url("s", "T", "aalst") == "https://aalst.paraaf.example/s/T"
    assert links.url("s", "T", "default") == links.url("s", "T") == "http://127.0.0.1:8083/s/T"
