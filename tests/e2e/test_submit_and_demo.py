"""`paraaf submit` and `paraaf demo` as an operator types them, each against a running demo city of its own whose
mail goes to `paraaf run all`'s mail catcher (the demo reads its links there, as on `make run`). The demo gets a
city of its own, as a newcomer's `make run` is: after the 50-document submit run in the same city it hung past
its 240 s (not yet understood; see the note on issue 14)."""

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.intake.domain import SourcePolicy
from tests.conftest import Infra, fresh_database, fresh_vhost
from tests.support.autosigner import AutoSigner
from tests.support.catcher import CatcherMailbox
from tests.support.pdfs import make_pdf
from tests.support.system import ROOT, System, demo_city
from tests.support.validate import pdfsig

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def mailbox() -> AsyncIterator[CatcherMailbox]:
    mailbox = CatcherMailbox()
    await mailbox.start()
    yield mailbox
    await mailbox.stop()


@pytest.fixture
async def city(infra: Infra, secrets_dir: str, mailbox: CatcherMailbox) -> AsyncIterator[System]:
    async with fresh_database(infra) as database_url, fresh_vhost(infra) as amqp_url:
        async with demo_city(
            "submit-and-demo", database_url=database_url, amqp_url=amqp_url, smtp=mailbox,  # type: ignore[arg-type]
            secrets_dir=secrets_dir, PARAAF_MAIL_RETRY_SECONDS="0.5", PARAAF_MAIL_RETRY_MAX_SECONDS="1",
        ) as system:
            # The demo's other sources, as deploy/demo/sources.sh registers them (the CLI itself is tested elsewhere).
            for source, flow in (("omgeving", "omgevingsvergunning"), ("personeel", "evaluatieverslag")):
                await system.register(SourcePolicy(source, "default", frozenset({flow})))
            yield system


async def paraaf(system: System, *args: str, amqp_url: str | None = None, columns: int = 200) -> tuple[int, str, str]:
    """`paraaf ARGS` as its own process, while this process's mail catcher and signer keep working."""
    env = {**system.env, "COLUMNS": str(columns), **({"PARAAF_AMQP_URL": amqp_url} if amqp_url else {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(asyncio.shield(communicating := asyncio.ensure_future(process.communicate())), 240)
    except TimeoutError:  # stopped, it says what it was doing: what it printed is the clue
        process.kill()
        out, err = await communicating
        (system.logs / f"{args[0]}.timed-out.out").write_bytes(out + b"\n--- stderr ---\n" + err)
        raise AssertionError(f"`paraaf {' '.join(args)}` still ran after 240 s; it printed:\n{out.decode()}\n{err.decode()}") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def statuses(system: System, source: str) -> dict[str, str]:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT external_ref, status FROM intake.documents WHERE source = $1", source)
    finally:
        await conn.close()
    return {r["external_ref"]: r["status"] for r in rows}


async def due_dates(system: System) -> list[datetime]:
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        return [r["due_at"] for r in await conn.fetch("SELECT DISTINCT due_at FROM router.instances")]
    finally:
        await conn.close()


async def test_a_folder_of_fifty_pdfs_one_broken(city: System, mailbox: CatcherMailbox, tmp_path: Path) -> None:
    """`paraaf submit DIR --wait --due 2d` on 50 PDFs, one broken, returns after the last of 49 outcomes and exits 1
    naming the broken one (intake's reason with it); the signers' mails ask for each by the due date it sent."""
    for number in range(1, 50):
        (tmp_path / f"besluit-{number:02}.pdf").write_bytes(make_pdf(text=f"Collegebesluit {number}"))
    (tmp_path / "kapot.pdf").write_bytes(b"%PDF-1.7\nthis is no PDF, the scanner stopped halfway")
    async with AutoSigner(mailbox, parallel=6) as signer:  # type: ignore[arg-type]
        code, out, err = await paraaf(
            city, "submit", str(tmp_path), "--flow", "collegebesluit", "--source", "notula",
            "--submitted-by", "elen.elaut", "--ref", "zitting-2026-11", "--wait", "--due", "2d",
            amqp_url=city.source_urls["notula"],
        )
        at_return = await statuses(city, "notula")
        [due] = await due_dates(city)
    (city.logs / "submit.out").write_text(out + err)
    assert code == 1, out + err
    refused = [line for line in err.splitlines() if line.startswith("refused:")]
    assert len(refused) == 1 and "kapot.pdf" in refused[0] and "broken_pdf" in refused[0], err
    assert at_return == {f"zitting-2026-11/besluit-{n:02}.pdf": "completed" for n in range(1, 50)}
    assert signer.answers["signed"] == 98  # the director and the mayor on each, through their mailed links
    assert out.count("completed") >= 49 and "rejected" in out
    local = due.astimezone(ZoneInfo(city.env.get("PARAAF_TIMEZONE", "Europe/Brussels")))
    asked = [m for m in mailbox.received if f"uiterlijk op {local:%d-%m-%Y om %H:%M}" in m.text]
    assert len(asked) == 98, [m.text for m in mailbox.received][:2]


async def test_the_demo_story(city: System, mailbox: CatcherMailbox) -> None:
    """`paraaf demo` plays its story on the running city; every document ends as the story says, in the database."""
    sources = Path(city.env["PARAAF_DATA_DIR"]) / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    for source, url in city.source_urls.items():
        (sources / f"{source}.url").write_text(url + "\n")
    shutil.rmtree(sources.parent / "demo", ignore_errors=True)  # an earlier run's signed PDFs (the folder outlives a city)
    code, out, err = await paraaf(city, "demo", "--mail-catcher", mailbox.web_url, "--outage-seconds", "3", "--pace", "0", columns=120)
    (city.logs / "demo.out").write_text(out)  # what a person watching saw (README shows one such run)
    assert code == 0, out + err
    notula = {ref: s for ref, s in (await statuses(city, "notula")).items() if not ref.startswith("zitting-2026-11/")}
    assert sorted(notula.values()) == ["completed"] * 11 + ["declined"], notula
    assert list((await statuses(city, "omgeving")).values()) == ["completed"]
    assert list((await statuses(city, "personeel")).values()) == ["completed"]
    on_behalf = [e for e in await city.audit_events("signature.signed") if (e.get("on_behalf_of") or {}).get("id") == "bart.baert"]
    assert on_behalf and all(e["signer"]["id"] in ("sofie.smet", "marc.maes") for e in on_behalf)
    assert [e["reason"] for e in await city.audit_events("signature.declined")]
    assert mailbox.catcher._handler.refused > 0  # the outage refused mail, and still every document came through
    assert "wnd. burgemeester" in out and "/s/" in out and mailbox.web_url in out
    (permit,) = (Path(city.env["PARAAF_DATA_DIR"]) / "demo").glob("*/omgevingsvergunning-0815-signed.pdf")
    reports = await asyncio.to_thread(pdfsig, permit.read_bytes(), await city.root_certificate())
    assert sorted(r.signer for r in reports) == ["Ann Aerts", "Sofie Smet"] and all(r.signature_valid for r in reports)
    stamps = subprocess.run(["pdftotext", str(permit), "-"], capture_output=True, text=True, check=True).stdout
    assert "wnd. burgemeester" in stamps  # the substitute's stamp on the PDF the permits package got back
