"""Operator commands of the signer: ``paraaf ca ...`` (the root, revoking a signer's certificate, the key
secret), ``paraaf archive retimestamp`` and ``paraaf verify FILE.pdf``."""

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer

from services.ops.incident_cli import _publish
from services.signer.config import MIGRATIONS, SignerSettings
from services.signer.hsm import token_config
from services.signer.keys import Keyring, NothingToRevoke, RevokedCertificate, check_secret, key_secret
from shared import blobs
from shared.credentials import shell_operator
from shared.db import open_database
from shared.events import CertificateRevoked
from shared.settings import CannotStart

__all__ = ["archive_app", "ca_app", "verify"]

ca_app = typer.Typer(help="The internal certificate authority and its keys.", no_args_is_help=True)
archive_app = typer.Typer(help="Completed documents kept for the long term.", no_args_is_help=True)
T = TypeVar("T")


async def _signer_pool(settings: SignerSettings) -> asyncpg.Pool:
    return await open_database(settings, "signer", migrations=MIGRATIONS)


def _with_keyring(settings: SignerSettings, work: Callable[[asyncpg.Connection, Keyring], Awaitable[T]]) -> T:
    """``work`` with the signer's keyring, unlocked with PARAAF_KEY_SECRET, as the signer's own role."""

    async def run() -> T:
        pool = await _signer_pool(settings)
        try:
            async with pool.acquire() as conn:
                keyring = Keyring(key_secret(settings), settings.organisation_name, settings.public_url, token=token_config(settings))
                await keyring.unlock(conn)
                return await work(conn, keyring)
        finally:
            await pool.close()

    return asyncio.run(run())


@ca_app.command("export")
def export(
    output: Path = typer.Option(None, "--output", "-o", help="write the PEM here instead of standard output"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Print the root certificate signatures chain to (created if it does not exist yet)."""
    settings = SignerSettings()

    async def root(conn: asyncpg.Connection, keyring: Keyring) -> str:
        cert_pem, _ = await keyring.authority(conn, org or settings.org)
        return cert_pem

    pem = _with_keyring(settings, root)
    if output:
        output.write_text(pem)
    else:
        typer.echo(pem, nl=False)


def verify(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="the signed PDF"),
    trust: list[Path] = typer.Option(
        None, "--trust", help="a PEM file of trusted root certificates (repeatable); default: this installation's root"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    org: str = typer.Option(None, help="organisation key whose root to trust (default: PARAAF_ORG)"),
) -> None:
    """Validate the signatures in a PDF: signer, on behalf of, time, intact, trusted, what changed after each.

    Exits 1 when any signature fails (or the PDF holds none), 2 when the file cannot be read.
    """
    # Here, not at the top: pyHanko is heavy, and every `paraaf` command imports this module.
    from services.signer.verify import NotVerifiable, load_roots, verify_pdf_async

    # pyHanko logs every validation failure with a traceback; the report already says what failed.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    roots = [c for path in trust for c in load_roots(path.read_bytes())] if trust else _installation_roots(org)
    try:
        report = asyncio.run(verify_pdf_async(file.read_bytes(), roots))
    except NotVerifiable as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = SignerSettings()
    typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else report.to_text(settings.timezone), nl=False)
    raise typer.Exit(0 if report.ok else 1)


def _installation_roots(org: str | None) -> list:
    """The org's root, and the TSA's roots (PARAAF_TSA_ROOTS) so its timestamps are trusted too."""
    # Here, not at the top: pyHanko is heavy, and every `paraaf` command imports this module.
    from services.signer.verify import load_roots

    settings = SignerSettings()
    tsa_roots = [c for der in settings.tsa_roots_der() for c in load_roots(der)]

    async def run() -> str:
        pool = await _signer_pool(settings)
        try:
            return await pool.fetchval("SELECT cert_pem FROM signer.authorities WHERE org = $1", org or settings.org)
        finally:
            await pool.close()

    try:
        pem = asyncio.run(run())
    except (OSError, asyncpg.PostgresError, CannotStart) as exc:
        typer.echo(f"cannot read the root certificate from the database ({exc}); pass --trust root.pem", err=True)
        raise typer.Exit(2) from None
    if pem is None:
        typer.echo(f"organisation `{org or settings.org}` has no certificate authority yet; pass --trust root.pem", err=True)
        raise typer.Exit(2)
    return load_roots(pem.encode()) + tsa_roots


@ca_app.command("rotate-secret")
def rotate_secret(
    new_secret_file: Path = typer.Option(
        ..., "--new-secret-file", exists=True, dir_okay=False, help="a file holding the new PARAAF_KEY_SECRET"
    ),
) -> None:
    """Encrypt every signing key under a new secret (stop the signer first; start it with the new secret after)."""
    settings = SignerSettings()
    new_secret = check_secret(new_secret_file.read_text().strip())
    count = _with_keyring(settings, lambda conn, keyring: keyring.rotate(conn, new_secret))
    typer.echo(f"{count} key(s) now encrypted under the new secret: set PARAAF_KEY_SECRET to it and start the signer")


def _revoked_event(org: str, revoked: RevokedCertificate, reason: str, by: str) -> CertificateRevoked:
    return CertificateRevoked(
        correlation_id=uuid.uuid5(uuid.NAMESPACE_URL, f"paraaf:certificate:{org}:{revoked.serial:x}"), org=org,
        person_id=revoked.person_id, title=revoked.title, name=revoked.name, serial=f"{revoked.serial:x}", reason=reason,
        revoked_by=by,
    )


@ca_app.command("revoke")
def revoke(
    person: str = typer.Argument(..., help="the person's id in the directory"),
    reason: str = typer.Option(..., help="why (e.g. `left the organisation`, `key compromised`); kept in the audit log"),
    title: str = typer.Option(None, help="only the certificate for this function (\"\" for their own); default: all of theirs"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Revoke a person's signing certificate(s): the CRL lists them from now on and their next signature gets a new
    certificate. Signatures they made before stay valid (their validation data is in the documents).

    When someone leaves, run this without --title (and take them out of the directory). Audited as
    certificate.revoked; if that cannot be published, nothing is revoked."""
    settings = SignerSettings()
    if not reason.strip():
        raise typer.BadParameter("say why the certificate is revoked", param_hint="--reason")
    org, by = org or settings.org, shell_operator()

    async def work(conn: asyncpg.Connection, keyring: Keyring) -> list:
        async with conn.transaction():  # published (confirmed) before the revocation commits
            revoked = await keyring.revoke(conn, org, person, title=title, reason=reason, by=by, at=datetime.now(UTC))
            for certificate in revoked:
                await _publish(settings, _revoked_event(org, certificate, reason, by))
        return revoked

    try:
        revoked = _with_keyring(settings, work)
    except NothingToRevoke as exc:
        typer.echo(f"{exc}; nothing revoked", err=True)
        raise typer.Exit(1) from None
    for certificate in revoked:
        function = f" ({certificate.title})" if certificate.title else ""
        typer.echo(f"Revoked certificate {certificate.serial:x} of {certificate.name}{function}; the audit log records it.")


_COMPLETED = "SELECT document_id, org, pdf_sha256 FROM signer.documents WHERE status = 'completed' AND org = $1 ORDER BY updated_at"


async def _retimestamp_one(
    conn: asyncpg.Connection, row: asyncpg.Record, pdf: bytes, tsa_url: str, root: bytes, tsa_roots: tuple[bytes, ...]
) -> None:
    """A fresh document timestamp on the document's current version (``pdf``), stored as its next version."""
    # Here, not at the top: pyHanko is heavy, and every `paraaf` command imports this module.
    from services.signer.pades import retimestamp

    updated = await asyncio.to_thread(retimestamp, pdf, tsa_url, (root,), tsa_roots)
    async with conn.transaction():
        if await conn.fetchval("SELECT pdf_sha256 FROM signer.documents WHERE document_id = $1 FOR UPDATE", row["document_id"]) != row["pdf_sha256"]:
            return  # changed meanwhile (another run): leave it to that one
        digest = await blobs.put_blob(conn, updated)
        revision = await conn.fetchval("SELECT max(revision) + 1 FROM blobs.versions WHERE document_id = $1", row["document_id"])
        await blobs.register_version(conn, row["document_id"], revision, row["org"], digest)
        await conn.execute("UPDATE signer.documents SET pdf_sha256 = $2, updated_at = now() WHERE document_id = $1", row["document_id"], digest)


@archive_app.command("retimestamp")
def retimestamp_archive(
    before: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="renew the timestamps whose TSA certificate expires before this day"),
    org: str = typer.Option(None, help="organisation key (default: PARAAF_ORG)"),
) -> None:
    """Add a fresh document timestamp (the DSS brought up to date first) to every completed document whose last
    document timestamp's TSA certificate expires before BEFORE, or that has none yet: PAdES B-LTA, renewed.

    Run it well before the TSA's certificate expires; each run is an incremental update, so every signature and
    earlier timestamp stays valid."""
    # Here, not at the top: pyHanko is heavy, and every `paraaf` command imports this module.
    from services.signer.pades import TimestampUnavailable, archive_timestamp_expiry
    from services.signer.verify import load_roots

    settings = SignerSettings()
    if not settings.tsa_url:
        typer.echo("PARAAF_TSA_URL is not set: a time-stamping authority is needed to renew timestamps", err=True)
        raise typer.Exit(2)
    deadline, org = before.replace(tzinfo=UTC), org or settings.org

    async def work(conn: asyncpg.Connection, keyring: Keyring) -> tuple[int, int]:
        root_pem, _ = await keyring.authority(conn, org)
        root = load_roots(root_pem.encode())[0].dump()
        renewed = rows = 0
        for row in await conn.fetch(_COMPLETED, org):
            rows += 1
            pdf = await blobs.get_blob(conn, row["pdf_sha256"])
            expiry = archive_timestamp_expiry(pdf)
            if expiry is None or expiry < deadline:
                await _retimestamp_one(conn, row, pdf, settings.tsa_url, root, settings.tsa_roots_der())
                renewed += 1
        return renewed, rows

    try:
        renewed, rows = _with_keyring(settings, work)
    except TimestampUnavailable as exc:
        typer.echo(f"{exc}; documents renewed before it are kept, run the command again", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{renewed} of {rows} completed document(s) got a fresh document timestamp; the others' last one lasts past {before:%Y-%m-%d}.")
