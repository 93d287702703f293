"""``paraaf submit``: send a PDF, or a folder of them, as an integrating source does (its own broker user from
PARAAF_AMQP_URL, through esign.intake), and follow each document on the source's own outcomes queue."""

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from services.ops.rules import parse_age
from services.source.client import FINAL, Document, SourceClient, source_client, source_of_url
from shared import clock
from shared.contract import Outcome
from shared.settings import Settings

__all__ = ["submit"]

_STYLE = {"accepted": "cyan", "completed": "green", "declined": "yellow", "withdrawn": "yellow", "rejected": "red"}


@dataclass
class _Entry:
    path: Path
    document: Document
    last: Outcome | None = None


def _pdfs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".pdf")
    if not found:
        raise typer.BadParameter(f"folder {path} holds no .pdf files", param_hint="PATH")
    return found


def _entries(path: Path, files: list[Path], *, ref: str | None, title: str | None, **fields: object) -> list[_Entry]:
    stamp = f"{clock.now():%Y%m%dT%H%M%S}"
    folder = path.is_dir()

    def reference(file: Path) -> str:
        if not folder:
            return ref or f"{file.stem}-{stamp}"
        return f"{ref or 'submit-' + stamp}/{file.name}"

    def titled(file: Path) -> str:
        return (f"{title}: {file.stem}" if folder else title) if title else file.stem

    return [
        _Entry(file, Document(external_ref=reference(file), title=titled(file), pdf=file.read_bytes(), filename=file.name, **fields))  # type: ignore[arg-type]
        for file in files
    ]


def _due(text: str | None, timezone: str) -> datetime | None:
    """``--due``: a while from now (``1h``, ``3d``, ``2w``) or an instant (ISO 8601; without an offset, the city's time)."""
    if text is None:
        return None
    try:
        return clock.now() + parse_age(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"`{text}` is neither a while (1h, 3d, 2w) nor an instant (2026-12-01T16:00, 2026-12-01T15:00:00Z)", param_hint="--due"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


def _detail(outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    if outcome.status == "rejected":
        return f"{outcome.code}: {outcome.reason}"
    if outcome.signatures:
        return ", ".join(
            s.signer.name + (f" (wnd. {s.on_behalf_of.name})" if s.on_behalf_of else "") for s in outcome.signatures
        )
    return outcome.reason or ""


async def _follow(client: SourceClient, entries: list[_Entry], *, wait: bool, timeout: float, console: Console) -> None:
    last_stage = 3 if wait else 2
    columns = (TextColumn("{task.description}", style="bold"), BarColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console) as progress:

        async def one(entry: _Entry) -> None:
            task = progress.add_task(entry.path.name, total=last_stage, status="sending")
            await client.submit(entry.document)
            progress.update(task, completed=1, status="sent: waiting for intake")
            while True:
                entry.last = await client.next_outcome(entry.document.external_ref)
                status = entry.last.status
                done = status in FINAL or (status == "accepted" and not wait)
                shown = f"[{_STYLE.get(status, 'white')}]{status}[/]" + (" (waiting for the signers)" if not done else "")
                progress.update(task, completed=last_stage if done else 2, status=shown)
                if done:
                    return

        try:
            await asyncio.wait_for(asyncio.gather(*(one(e) for e in entries)), timeout)
        except TimeoutError:
            pass  # the summary names what did not come


def submit(
    path: Annotated[Path, typer.Argument(exists=True, help="a PDF, or a folder whose PDFs are each their own document")],
    flow: Annotated[str, typer.Option("--flow", help="the flow key (see `paraaf flows list`)")],
    source: Annotated[str, typer.Option("--source", help="the source whose broker user is in PARAAF_AMQP_URL")],
    submitted_by: Annotated[str, typer.Option("--submitted-by", help="the submitter's person id in the directory")],
    ref: Annotated[str | None, typer.Option("--ref", help="external_ref (a folder: REF/<file name>); default: made from the time")] = None,
    title: Annotated[str | None, typer.Option("--title", help="the title (a folder: TITLE: <file name>); default: the file name")] = None,
    confidential: Annotated[bool, typer.Option("--confidential", help="only the submitter and the signers see it")] = False,
    language: Annotated[str, typer.Option("--language", help="nl, fr or en")] = "nl",
    due: Annotated[str | None, typer.Option(
        "--due", help="when it should be signed by: a while from now (1h, 3d) or an instant (2026-12-01T16:00, the city's time)"
    )] = None,
    wait: Annotated[bool, typer.Option("--wait", help="return after each document's outcome, not after intake took it")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for all answers")] = 3600.0,
) -> None:
    """Submit documents as source SOURCE does, with its own credentials (PARAAF_AMQP_URL, printed by `paraaf sources add`);
    shows each document's progress and a summary; exits 1 naming each file intake refused, and why."""
    settings = _as_source(source)
    due_at = _due(due, settings.timezone)
    entries = _entries(
        path, _pdfs(path), ref=ref, title=title, flow=flow, submitted_by=submitted_by, confidential=confidential, language=language,
        due_at=due_at,
    )
    console = Console()

    async def run() -> None:
        async with source_client(settings.amqp_url, source) as client:
            await _follow(client, entries, wait=wait, timeout=timeout, console=console)

    asyncio.run(run())
    _report(entries, source, timeout, console)


def _as_source(source: str) -> Settings:
    """The settings, when PARAAF_AMQP_URL is ``source``'s own; else the command stops saying whose URL it needs."""
    settings = Settings()
    own = source_of_url(settings.amqp_url, settings.broker_user_prefix)
    if own != source:
        typer.echo(
            f"paraaf submit: PARAAF_AMQP_URL must be source `{source}`'s own URL (user"
            f" {settings.broker_user_prefix}.source.{source}, printed by `paraaf sources add {source}`), not "
            + (f"source `{own}`'s" if own else "an administrator's or a service's"),
            err=True,
        )
        raise typer.Exit(2)
    return settings


def _report(entries: list[_Entry], source: str, timeout: float, console: Console) -> None:
    """The summary table; then each refused file (or one that got no answer) on stderr, and exit 1 if any."""
    table = Table("file", "external_ref", "outcome", "document", "detail", title=f"{len(entries)} document(s) from {source}")
    for entry in entries:
        status = entry.last.status if entry.last else "no answer"
        table.add_row(
            entry.path.name, entry.document.external_ref, f"[{_STYLE.get(status, 'red')}]{status}[/]",
            str(entry.last.document_id or "") if entry.last else "", _detail(entry.last),
        )
    console.print(table)
    failed = [e for e in entries if e.last is None or e.last.status == "rejected"]
    for entry in failed:
        why = _detail(entry.last) if entry.last else f"no answer from Paraaf within {timeout:g} s"
        typer.echo(f"refused: {entry.path}: {why}", err=True)
    if failed:
        raise typer.Exit(1)
