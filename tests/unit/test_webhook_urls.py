"""Which webhook URLs `paraaf sources add --webhook` takes: an outcome carries a signed PDF, so https, and plain http
only to this machine itself or when the administrator allowed it on purpose."""

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.intake.sources import webhook_url_problem

# Nothing answers here: a command that got as far as the database would fail with another message.
NOWHERE = {
    "PARAAF_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/paraaf",
    "PARAAF_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
}


@pytest.mark.parametrize(
    "url", ["https://crm.example/paraaf", "http://127.0.0.1:8099/hook", "http://[::1]:8099/hook", "http://localhost/hook"]
)
def test_https_anywhere_and_http_to_this_machine_are_taken(url: str) -> None:
    """An https URL, or http to 127.0.0.1, ::1 or localhost (tests, a receiver beside Paraaf), has nothing wrong."""
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example/paraaf",
        "http://10.0.0.7/hook",
        "http://localhost.crm.example/",
        "http://127.0.0.1.nip.io/",
        "http://[::1/",
    ],
)
def test_plain_http_to_another_host_is_refused_naming_the_way_out(url: str) -> None:
    """http to any other host (also one that only starts like a loopback name) is refused, saying why and what to set."""
    problem = webhook_url_problem(url)
    assert problem is not None and url in problem and "https" in problem and "PARAAF_WEBHOOK_ALLOW_HTTP=true" in problem


def test_an_administrator_may_allow_plain_http_on_purpose() -> None:
    """With PARAAF_WEBHOOK_ALLOW_HTTP set, http to another host is taken; what is no URL still is not."""
    assert webhook_url_problem("http://crm.example/paraaf", allow_http=True) is None
    assert webhook_url_problem("ftp://crm.example/paraaf", allow_http=True) is not None


def test_paraaf_sources_add_refuses_an_http_webhook_before_it_changes_anything() -> None:
    """The command stops with the reason before it reaches the database or the broker (neither answers here)."""
    result = CliRunner().invoke(
        app,
        ["sources", "add", "crm", "--org", "default", "--any-submitter", "--webhook", "http://crm.example/paraaf"],
        env=NOWHERE,
    )
    assert result.exit_code == 1
    assert "plain http" in result.output and "PARAAF_WEBHOOK_ALLOW_HTTP=true" in result.output
