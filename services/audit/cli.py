"""Operator commands of the audit log: ``paraaf audit ...``.

``verify`` checks the chain against every checkpoint it can find: those in
the database and, with ``--checkpoints FILE``, an export kept elsewhere —
the one a database superuser cannot reach, so the one that catches a whole
rewritten log. A checkpoint counts only when its signature holds and its
certificate chains to the organisation's CA root — the copy ``paraaf setup``
filed with the audit's secrets, outside the database, or one given with
``--trust`` — and its timestamp token's own signature holds. A checkpoint
sealed before the key was certified counts when signed by the sealing key
on file (its public half: the private key is not needed to verify)."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer

from services.audit.chain import Break
from services.audit.config import AuditSettings
from services.audit.seal import Checkpoint, Trust, load_certificates, load_sealing_key, public_key_of
from services.audit.store import PostgresAuditStore
from shared.credentials import stored
from shared.db import open_database

__all__ = ["audit_app"]

T = TypeVar("T")
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="The sealed checkpoints of the chain.", no_args_is_help=True)
audit_app.add_typer(checkpoints_app, name="checkpoints")


async def _read(settings: AuditSettings, work: Callable[[PostgresAuditStore], Awaitable[T]]) -> T:
    """``work`` as the audit's own role, in one read-only snapshot (the cursor streams inside it)."""
    pool = await open_database(settings, "audit", migrations=Path(__file__).parent / "migrations")
    try:
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await work(PostgresAuditStore(conn))
    finally:
        await pool.close()


def _trust(settings: AuditSettings, roots: Path | None, tsa_roots: Path | None) -> Trust:
    """The organisation's CA root (given, or the one on file), the sealing key on file, the TSA roots if given."""
    on_file = stored(settings, "audit")
    root_pem = _read_pem(roots, "--trust") if roots else on_file.get("seal_root")
    key = public_key_of(load_sealing_key(on_file["seal_key"])) if on_file.get("seal_key") else None
    if not root_pem:
        typer.echo(
            "no organisation CA root on file: checkpoints' certificates are not checked; pass --trust root.pem"
            " (`paraaf ca export` writes it)" + ("" if key else "; no audit sealing key either: checkpoints are"
                                                 " checked against the key they name"),
            err=True,
        )
    tsa = load_certificates(_read_pem(tsa_roots, "--tsa-trust")) if tsa_roots else ()
    return Trust(roots=load_certificates(root_pem) if root_pem else (), key=key, tsa_roots=tsa)


def _read_pem(path: Path, option: str) -> str:
    try:
        text = path.read_text()
        load_certificates(text)
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read certificates from {path} ({option}): {exc}; give a PEM file", err=True)
        raise typer.Exit(2) from None
    return text


def _load(path: Path) -> list[Checkpoint]:
    try:
        return [Checkpoint.from_json(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        typer.echo(f"cannot read checkpoints from {path}: {exc}; give a file `paraaf audit checkpoints export` wrote", err=True)
        raise typer.Exit(2) from None


@audit_app.command("verify")
def verify(
    checkpoints: Path = typer.Option(None, "--checkpoints", help="checkpoints exported earlier (JSON lines), kept apart"),
    trust: Path = typer.Option(
        None, "--trust", help="the organisation's CA root (PEM) the checkpoints' certificates must chain to; default: the one on file"
    ),
    tsa_trust: Path = typer.Option(None, "--tsa-trust", help="roots (PEM) the timestamp tokens' authorities must chain to"),
) -> None:
    """Check every link of the hash chain and every checkpoint; exit 1 at the first break."""
    # Here, not at the top: the handlers bring the service's messaging (FastStream), which only this command needs.
    from services.audit import handlers

    settings = AuditSettings()
    exported = _load(checkpoints) if checkpoints else []
    trusted = _trust(settings, trust, tsa_trust)
    entries, problem = asyncio.run(_read(settings, lambda store: handlers.verify(store, exported, trust=trusted)))
    _report(entries, problem, len(exported))


def _report(entries: int, problem: Break | None, exported: int) -> None:
    if problem is not None:
        typer.echo(f"BROKEN at entry {problem.seq}: {problem.reason} ({entries} entries checked)")
        raise typer.Exit(1)
    typer.echo(f"intact: {entries} entries" + (f", {exported} exported checkpoints match" if exported else ""))


@checkpoints_app.command("export")
def export(output: Path = typer.Option(None, "-o", "--output", help="write here instead of to standard output")) -> None:
    """Every sealed checkpoint, one JSON object a line: keep the file away from the database's administrators."""
    lines = [c.to_json() for c in asyncio.run(_read(AuditSettings(), lambda store: store.checkpoints()))]
    text = "".join(line + "\n" for line in lines)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"{len(lines)} checkpoints written to {output}", err=True)
