"""`paraaf run all --scale`: how many processes of each service, and what each replica is told."""

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.supervisor import parse_scale, replica_environment


def test_scale_names_processes_per_service() -> None:
    """`signer=3,router=2` asks for three signers and two routers; the others stay single."""
    assert parse_scale("signer=3, router=2") == {"signer": 3, "router": 2}
    assert parse_scale("") == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("singer=3", "`singer` is not a service"),
        ("signer=0", "at least 1 process"),
        ("signer=-2", "at least 1 process"),
        ("signer=three", "whole number"),
        ("signer", "write SERVICE=N"),
        ("signer=2,signer=3", "scaled twice"),
    ],
)
def test_a_wrong_scale_is_refused_saying_why(text: str, says: str) -> None:
    """An unknown service, a count under one or a malformed part is refused with what was wrong."""
    with pytest.raises(ValueError, match=says):
        parse_scale(text)


def test_a_scale_for_a_service_not_run_is_refused() -> None:
    """`paraaf run router --scale signer=2` would start no signer: refused."""
    with pytest.raises(ValueError, match="not among the services being run"):
        parse_scale("signer=2", ("router",))


def test_the_command_refuses_a_wrong_scale_before_starting_anything() -> None:
    """`paraaf run all --scale signer=0` exits with a usage error naming --scale."""
    result = CliRunner().invoke(app, ["run", "all", "--scale", "signer=0"])
    assert result.exit_code == 2
    assert "--scale" in result.output and "at least 1 process" in result.output


def test_replicas_of_a_scaled_service_share_its_port_and_say_which_they_are() -> None:
    """Replicas get port sharing and their number; a service run once keeps its port to itself."""
    environment = {"PARAAF_AMQP_URL": "amqp://admin:secret@rabbit/", "PARAAF_KEY_SECRET": "k"}
    second = replica_environment("signer", 2, 3, environment)
    assert second["PARAAF_HTTP_REUSE_PORT"] == "true" and second["PARAAF_REPLICA"] == "2"
    assert second["PARAAF_AMQP_URL"] == "amqp://rabbit/"  # still without the administrator's credentials
    alone = replica_environment("router", 1, 1, environment)
    assert "PARAAF_HTTP_REUSE_PORT" not in alone and "PARAAF_REPLICA" not in alone and "PARAAF_KEY_SECRET" not in alone
