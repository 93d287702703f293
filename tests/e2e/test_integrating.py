"""docs/integrating.md's example clients, each run unmodified as its own process against one running demo city
(every service its own process), with its connection settings in the environment as an integrator sets them: the
source's own AMQP URL as `paraaf sources add` printed it. The signers sign through the links mailed to them
(tests/support/autosigner.py); each test checks what the client printed and the signed PDFs it filed. And intake
serves the AsyncAPI document kept in docs/."""

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from services.signer.pades import find_placeholders
from tests.conftest import Infra, city_on_fresh_install
from tests.support.autosigner import AutoSigner
from tests.support.pdfs import make_pdf
from tests.support.system import ROOT, System
from tests.support.validate import pdfsig_all

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "docs" / "examples"
DECISIONS = 20


@pytest.fixture(scope="module")
async def city(infra: Infra, secrets_dir: str) -> AsyncIterator[System]:
    """The demo city with its three integrating systems registered as deploy/demo/sources.sh does."""
    async with city_on_fresh_install(infra, secrets_dir, "integrating") as system:
        system.add_source("omgeving", "--org", "default", "--flows", "omgevingsvergunning", "--any-submitter")
        system.add_source("loket", "--org", "default", "--ad-hoc-steps", "--any-submitter")
        yield system


async def run_example(city: System, script: str, source: str, args: list[Path], workdir: Path) -> tuple[int, str]:
    """``python docs/examples/<script> ARGS`` in ``workdir``, the signers signing meanwhile; its exit code and output."""
    env = {"PATH": os.environ["PATH"], "PARAAF_SOURCE_URL": city.source_urls[source], "PARAAF_WAIT_SECONDS": "240"}
    async with AutoSigner(city.smtp):  # type: ignore[attr-defined]
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / script), *map(str, args), cwd=workdir, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    return process.returncode or 0, output.decode()


async def test_the_minutes_package_gets_all_twenty_decisions_back_signed_matched_by_reference(
    city: System, tmp_path: Path
) -> None:
    """minutes.py submits 20 decisions in one batch; each comes back completed under its own external_ref, filed as a
    PDF that poppler finds signed by the general director and the mayor."""
    pdfs = []
    for number in range(1, DECISIONS + 1):
        (pdf := tmp_path / f"besluit-{number:02d}.pdf").write_bytes(make_pdf(1, f"Besluit {number}"))
        pdfs.append(pdf)
    code, output = await run_example(city, "minutes.py", "notula", pdfs, tmp_path)
    assert code == 0, output
    completed = re.findall(r"^(ZIT-\d{8}-\d{6}-(\d\d)) completed (\S+) signed by Ann Aerts, Bart Baert$", output, re.M)
    assert sorted(int(number) for _, number, _ in completed) == list(range(1, DECISIONS + 1)), output
    assert f"{DECISIONS} of {DECISIONS} decisions signed" in output
    filed = {ref: (tmp_path / path).read_bytes() for ref, _, path in completed}
    for reports in pdfsig_all(list(filed.values()), await city.root_certificate()):
        assert [r.signer for r in reports] == ["Ann Aerts", "Bart Baert"]
        assert all(r.signature_valid and r.certificate_trusted for r in reports)
    # each PDF is its own decision's: the outcome was matched by reference, not taken in order
    for _, number, path in completed:
        text = subprocess.run(["pdftotext", str(tmp_path / path), "-"], capture_output=True, text=True, check=True).stdout
        assert f"Besluit {int(number)} - page 1" in text, path


async def test_the_permits_package_gets_the_approval_and_both_signatures_on_their_markers(city: System, tmp_path: Path) -> None:
    """permits.py submits a permit with [SIG01] and [SIG02]: the outcome lists the head's approval and both signatures,
    and each signature's field lies on its marker."""
    original = make_pdf(1, "Omgevingsvergunning OMV-42", placeholder="[SIG01]                    [SIG02]")
    (permit := tmp_path / "vergunning.pdf").write_bytes(original)
    code, output = await run_example(city, "permits.py", "omgeving", [permit], tmp_path)
    assert code == 0, output
    assert "step 1: approve by Olga Oyen" in output
    assert re.search(r"^step 2: sign by Ann Aerts in field \S+$", output, re.M), output
    assert re.search(r"^step 2: sign by Bart Baert in field \S+$", output, re.M), output
    signed = (tmp_path / re.search(r"signed permit: (\S+)", output).group(1)).read_bytes()  # type: ignore[union-attr]
    assert len(pdfsig_all([signed], await city.root_certificate())[0]) == 2
    markers = {p.number: p.box for p in find_placeholders(original)}
    fields = (f.get_object() for f in PdfFileReader(io.BytesIO(signed), strict=False).root["/AcroForm"]["/Fields"])
    rects = [[float(v) for v in field["/Rect"]] for field in fields if "/V" in field]
    assert sorted(round(r[0]) for r in rects) == sorted(round(markers[n][0]) for n in (1, 2)), (rects, markers)


async def test_the_e_counter_awaits_its_one_signature_within_the_hour(city: System, tmp_path: Path) -> None:
    """ecounter.py sends an ad-hoc one-signer flow due within the hour and waits: the mayor's mail asks for it by that
    time (in the city's time zone), and the outcome is his signature."""
    (certificate := tmp_path / "attest.pdf").write_bytes(make_pdf(1, "Attest van woonst"))
    code, output = await run_example(city, "ecounter.py", "loket", [certificate], tmp_path)
    assert code == 0, output
    sent = re.search(r"^LOKET-\S+: submitted, due (\S+)$", output, re.M)
    assert sent, output
    found = re.search(r"^(LOKET-\S+): signed by Bart Baert at \S+: (\S+)$", output, re.M)
    assert found, output
    [mail] = city.smtp.received_by("bart.baert@demo.paraaf.be", about=f"Attest {found.group(1)}")  # type: ignore[attr-defined]
    due = datetime.fromisoformat(sent.group(1)).astimezone(ZoneInfo(city.env.get("PARAAF_TIMEZONE", "Europe/Brussels")))
    assert f"Graag uiterlijk op {due:%d-%m-%Y om %H:%M}." in mail.text, mail.text
    assert [r.signer for r in pdfsig_all([(tmp_path / found.group(2)).read_bytes()], await city.root_certificate())[0]] == ["Bart Baert"]


async def test_intake_serves_the_asyncapi_document_kept_in_docs(city: System) -> None:
    """GET /asyncapi on the running intake answers the very document in docs/asyncapi.yaml."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(city.url("intake", "/asyncapi"))
        as_json = await client.get(city.url("intake", "/asyncapi.json"))
    assert answer.status_code == 200 and answer.text == (ROOT / "docs" / "asyncapi.yaml").read_text()
    assert as_json.json()["channels"]["esign.intake:submit.{source}"]["address"] == "submit.{source}"
