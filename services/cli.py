"""``paraaf``: the one command operators use."""

import asyncio
import os
import sys
from typing import Annotated

import typer

from services.admin.cli import broker_app, db_app, keys_app, setup, sources_app
from services.audit.cli import audit_app
from services.dlq import dlq_app
from services.ops.cli import documents, tail, trail
from services.ops.incident_cli import incidents_app, resend
from services.router.cli import absence_app, directory_app, document_app, flows_app
from services.signer.cli import archive_app, ca_app, verify
from services.supervisor import SERVICES, supervise
from shared import clock
from shared.clock import clock_from
from shared.logs import configure_logging
from shared.settings import CannotStart, Settings

__all__ = ["app", "main"]

app = typer.Typer(help="Paraaf: document-signing workflows for public administrations.", no_args_is_help=True)
app.command("setup")(setup)
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
app.add_typer(sources_app, name="sources")
app.add_typer(keys_app, name="keys")
app.add_typer(directory_app, name="directory")
app.add_typer(flows_app, name="flows")
app.add_typer(absence_app, name="absence")
app.add_typer(document_app, name="document")
app.add_typer(ca_app, name="ca")
app.add_typer(archive_app, name="archive")
app.add_typer(audit_app, name="audit")
app.add_typer(dlq_app, name="dlq")
app.command("verify")(verify)
app.command("documents")(documents)
app.command("trail")(trail)
app.command("tail")(tail)
app.add_typer(incidents_app, name="incidents")
document_app.command("resend")(resend)  # the operator's (as her broker user), beside the router's reassign and withdraw


@app.command("run")
def run(
    which: Annotated[str, typer.Argument(help="`all`, or one of " + ", ".join(SERVICES))] = "all",
) -> None:
    """Start the services as separate processes and keep them running; Ctrl-C stops them."""
    names = SERVICES if which == "all" else (which,)
    if which != "all" and which not in SERVICES:
        raise typer.BadParameter(f"`{which}` is not a service; choose all or one of {', '.join(SERVICES)}")
    configure_logging("supervisor", os.environ.get("PARAAF_LOG_LEVEL", "INFO"), os.environ.get("PARAAF_LOG_FORMAT", "json"))
    asyncio.run(supervise(names, mail_catcher=which == "all" and not os.environ.get("PARAAF_SMTP_HOST")))


def main() -> None:
    try:
        clock.install(clock_from(Settings()))  # what the operator's commands announce is stamped as the services' are
        app()
    except CannotStart as exc:
        print(f"paraaf: {exc}", file=sys.stderr)
        sys.exit(2)
