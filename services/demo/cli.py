"""``paraaf demo``: the story of services/demo/story.py, on the city `make run` started."""

import asyncio
from typing import Annotated

import httpx
import typer
from rich.console import Console

from services.demo.story import Demo, run_paraaf
from shared.settings import Settings

__all__ = ["demo"]

SOURCES = ("notula", "omgeving", "personeel")


def demo(
    mail_catcher: Annotated[str, typer.Option("--mail-catcher", help="the mail catcher's page (`paraaf run all`'s)")] = "http://127.0.0.1:8025/",
    outage_seconds: Annotated[float, typer.Option("--outage-seconds", help="how long the mail server is down")] = 10.0,
    timeout: Annotated[float, typer.Option("--timeout", help="give up after this many seconds")] = 600.0,
    pace: Annotated[float, typer.Option("--pace", help="seconds between printing a link and using it (click it first!)")] = 1.0,
) -> None:
    """Play a story on the running demo city (`make run`, then this in another terminal): a batch of decisions, a permit,
    a confidential evaluation, a mayor on leave, a refusal, a mail server outage; signed through the mailed links."""
    settings = Settings()
    folder = settings.data_dir / "sources"
    missing = [source for source in SOURCES if not (folder / f"{source}.url").is_file()]
    if missing:
        typer.echo(f"paraaf demo: no {folder}/{missing[0]}.url: register the demo's sources first (`make demo`)", err=True)
        raise typer.Exit(2)
    try:
        httpx.get(mail_catcher.rstrip("/") + "/mails.json", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        typer.echo(f"paraaf demo: the mail catcher at {mail_catcher} does not answer ({exc}); start the city with `make run`", err=True)
        raise typer.Exit(2) from None
    story = Demo(
        console=Console(), catcher_url=mail_catcher, public_url=settings.public_url, saved_in=settings.data_dir / "demo",
        source_urls={source: (folder / f"{source}.url").read_text().strip() for source in SOURCES},
        outage_seconds=outage_seconds, pace=pace, parallel=3, paraaf=lambda *args: asyncio.to_thread(run_paraaf, *args),
    )
    try:
        ended_well = asyncio.run(asyncio.wait_for(story.play(), timeout))
    except TimeoutError:
        typer.echo(f"paraaf demo: not every document came back within {timeout:g} s; see `paraaf documents`", err=True)
        raise typer.Exit(1) from None
    if not ended_well:
        typer.echo("paraaf demo: a document did not end as the story says (see the table)", err=True)
        raise typer.Exit(1)
