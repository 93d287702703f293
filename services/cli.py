"""``paraaf``: the one command operators use."""

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.admin.cli import broker_app, db_app, keys_app, setup, sources_app
from services.admin.orgs import org_app
from services.audit.cli import audit_app
from services.demo.cli import demo
from services.dlq import dlq_app
from services.ops.cli import documents, tail, trail
from services.ops.incident_cli import incidents_app, resend
from services.router.cli import absence_app, directory_app, document_app, flows_app
from services.signer.cli import archive_app, ca_app, verify
from services.source.cli import submit
from services.supervisor import SERVICES, parse_scale, supervise
from shared import clock
from shared.clock import clock_from
from shared.logs import configure_logging
from shared.settings import CannotStart, Settings

__all__ = ["app", "main"]

app = typer.Typer(help="Paraaf: document-signing workflows for public administrations.", no_args_is_help=True)
app.command("setup")(setup)
app.add_typer(org_app, name="org")
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
app.command("submit")(submit)
app.command("demo")(demo)
app.command("documents")(documents)
app.command("trail")(trail)
app.command("tail")(tail)
app.add_typer(incidents_app, name="incidents")
document_app.command("resend")(resend)  # the operator's (as her broker user), beside the router's reassign and withdraw


@app.command("run")
def run(
    which: Annotated[str, typer.Argument(help="`all`, or one of " + ", ".join(SERVICES))] = "all",
    log_file: Annotated[Path | None, typer.Option("--log-file", help="the services' logs go here, not to the terminal")] = None,
    scale: Annotated[
        str, typer.Option("--scale", help="processes per service, e.g. signer=3,router=2 (they share the work and the port)")
    ] = "",
) -> None:
    """Start the services as separate processes and keep them running; Ctrl-C stops them."""
    names = SERVICES if which == "all" else (which,)
    if which != "all" and which not in SERVICES:
        raise typer.BadParameter(f"`{which}` is not a service; choose all or one of {', '.join(SERVICES)}")
    try:
        counts = parse_scale(scale, names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from None
    catcher = which == "all" and not os.environ.get("PARAAF_SMTP_HOST")
    level, fmt = os.environ.get("PARAAF_LOG_LEVEL", "INFO"), os.environ.get("PARAAF_LOG_FORMAT", "json")
    if log_file is None:
        configure_logging("supervisor", level, fmt)
        asyncio.run(supervise(names, mail_catcher=catcher, scale=counts))
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab", buffering=0) as output:
        configure_logging("supervisor", level, fmt, stream=open(output.fileno(), "w", buffering=1, closefd=False))  # noqa: SIM115
        asyncio.run(
            supervise(names, mail_catcher=catcher, output=output, when_up=_next_steps(log_file, catcher), scale=counts)
        )


def _next_steps(log_file: Path, catcher: bool) -> list[str]:
    portal = Settings().public_url.rstrip("/")
    mails = "the mail catcher http://127.0.0.1:8025/" if catcher else "your mail client (PARAAF_SMTP_HOST)"
    return [
        f"Paraaf is up. Open the portal {portal}/p/ and {mails}.",
        "In another terminal type `.venv/bin/paraaf demo` to watch a story play: decisions, a permit, a refusal, an outage.",
        f"Logs go to {log_file} (tail -f {log_file}); Ctrl-C here stops everything.",
    ]


def main() -> None:
    try:
        clock.install(clock_from(Settings()))  # what the operator's commands announce is stamped as the services' are
        app()
    except CannotStart as exc:
        print(f"paraaf: {exc}", file=sys.stderr)
        sys.exit(2)
