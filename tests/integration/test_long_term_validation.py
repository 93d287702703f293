"""Long-term validation as an operator and a later reader meet it, on a real database, real signing workers, a
real RFC 3161 TSA and the signer's HTTP service on a real port: two signatures made by link are PAdES B-LT, the
completing one adds a document timestamp (B-LTA); `paraaf ca revoke` puts a signer's certificate on the CRL the
certificates point at; with that service stopped and every connection refused, pyHanko, `paraaf verify`'s report
and pdfsig still accept every signature; `paraaf archive retimestamp` renews the document timestamp."""

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
import httpx
import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy
from pyhanko_certvalidator.registry import SimpleCertificateStore, SimpleTrustManager

from services.signer import handlers
from services.signer.ca import crl_url_of
from services.signer.pades import CachedKeySigner, SigningPool, TimestampUnavailable, retimestamp, sign
from services.signer.render import RenderPool
from services.signer.signing import Stamping
from services.signer.verify import load_roots, verify_pdf_async
from shared.events import DocumentCompleted, PersonRef
from tests.support.commands import paraaf
from tests.support.net import free_port, serving
from tests.support.offline import network_cut
from tests.support.pdfs import make_pdf
from tests.support.signer_harness import KEY_SECRET, SignerHarness
from tests.support.signing import SigningCity
from tests.support.tsa import TimestampAuthority
from tests.support.validate import pdfsig

ROOT = Path(__file__).resolve().parents[2]
ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann@x.be", title="algemeen directeur")
BART = PersonRef(id="bart.baert", name="Bart Baert", email="bart@x.be", title="burgemeester")


@pytest.fixture
async def tsa() -> AsyncIterator[TimestampAuthority]:
    authority = TimestampAuthority()
    await authority.start()
    yield authority
    await authority.stop()


async def _signed_by_two(signer: SignerHarness) -> tuple[object, bytes]:
    """A two-signature document, signed by Ann then Bart from their links: (document id, the completed PDF)."""
    document = await signer.new_document(make_pdf(1))
    _, first = await signer.request(document, ANN, step=1, step_count=2, signature_count=2)
    assert (await signer.sign(first)).status_code == 200
    _, second = await signer.request(document, BART, step=2, step_count=2, signature_count=2)
    assert (await signer.sign(second)).status_code == 200
    _, pdf = await signer.document(document[0])
    return document[0], pdf


def _signer_certificates(pdf: bytes) -> dict[str, asn1_x509.Certificate]:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    return {s.signer_cert.subject.native["common_name"]: s.signer_cert for s in reader.embedded_regular_signatures}


def _offline_ades(roots: list[asn1_x509.Certificate]) -> PdfSignatureValidationSpec:
    """pyHanko's AdES long-term validation with what the document holds: revocation data required where a certificate
    names where to find it, and nothing fetched, neither revocation data nor certificates."""
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=roots),
                revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy.from_legacy("hard-fail")),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY,
                certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
            ),
        )
    )


async def _audited(amqp_url: str, routing_key: str) -> list[dict]:
    """The events the audit log's queue holds with ``routing_key`` (read unacknowledged: back in the queue after)."""
    found = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        queue = await (await connection.channel()).get_queue("audit.events", ensure=False)
        while (message := await queue.get(fail=False)) is not None:
            if message.routing_key == routing_key:
                found.append(json.loads(message.body))
    return found


async def test_a_b_lta_document_validates_offline_after_its_signer_is_revoked_and_pdfsig_agrees(
    shell: dict[str, str], database_url: str, signing_pool: SigningPool, render_pool: RenderPool, tsa: TimestampAuthority
) -> None:
    """Signed B-LTA, then Ann's certificate revoked (`paraaf ca revoke`, audited, on the CRL her certificate points at,
    which a current check now refuses): with the signer's HTTP service stopped and every connection refused, the
    revocation data embedded at signing still validates both signatures in pyHanko and `paraaf verify`; pdfsig agrees."""
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    stamping = Stamping(tsa_url=tsa.url)
    async with SignerHarness(database_url, signing_pool, render_pool, public_url=public_url, stamping=stamping) as signer:
        async with serving(signer.app, port), httpx.AsyncClient() as http:
            _, pdf = await _signed_by_two(signer)
            ann = _signer_certificates(pdf)["Ann Aerts"]
            crl_url = crl_url_of(x509.load_der_x509_certificate(ann.dump()).public_bytes(Encoding.PEM))
            assert crl_url == f"{public_url}/ca/default.crl"
            before = asn1_crl.CertificateList.load((await http.get(crl_url)).content)

            operator = {**shell, "PARAAF_KEY_SECRET": KEY_SECRET, "PARAAF_PUBLIC_URL": public_url}
            revoked = await asyncio.to_thread(paraaf, operator, "ca", "revoke", "ann.aerts", "--reason", "left the organisation")
            assert revoked.returncode == 0 and "Revoked certificate" in revoked.stdout, revoked.stdout + revoked.stderr
            now_crl = asn1_crl.CertificateList.load((await http.get(crl_url)).content)
        root = (await signer.client.get("/ca.pem")).content

    assert [e["serial_number"] for e in before["tbs_cert_list"]["revoked_certificates"].native or []] == []
    assert ann.serial_number in [e["user_certificate"] for e in now_crl["tbs_cert_list"]["revoked_certificates"].native]
    [audited] = await _audited(shell["PARAAF_AMQP_URL"], "certificate.revoked")
    assert (audited["person_id"], audited["reason"], audited["serial"]) == (
        "ann.aerts",
        "left the organisation",
        f"{ann.serial_number:x}",
    )
    again = await asyncio.to_thread(paraaf, operator, "ca", "revoke", "ann.aerts", "--reason", "twice")
    assert again.returncode == 1 and "holds no certificate" in again.stderr

    roots = load_roots(root + tsa.root_pem)
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    assert len(reader.embedded_timestamp_signatures) == 1, "the completing signature adds a document timestamp"
    # Checked now against the current CRL, Ann's signature is refused: the revocation is real.
    current = ValidationContext(trust_roots=roots, crls=[now_crl], allow_fetching=False, revocation_mode="hard-fail")
    ann_now = await async_validate_pdf_signature(reader.embedded_regular_signatures[0], current)
    assert not ann_now.trusted and ann_now.revoked

    with network_cut() as cut:
        async with aiohttp.ClientSession() as session:  # the cut holds for the client pyHanko fetches with
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(crl_url)
        assert cut.attempts, "the cut did not catch a fetch"
        cut.attempts.clear()
        embedded = DocumentSecurityStore.read_dss(reader).as_validation_context(
            {"trust_roots": roots, "allow_fetching": False, "revocation_mode": "hard-fail"}
        )
        statuses = [await async_validate_pdf_signature(s, embedded) for s in reader.embedded_regular_signatures]
        long_term = [await ades_lta_validation(s, _offline_ades(roots)) for s in reader.embedded_regular_signatures]
        report = await verify_pdf_async(pdf, roots)
    assert cut.attempts == [], f"validation tried the network: {cut.attempts}"
    assert [(s.intact, s.valid, s.trusted) for s in statuses] == [(True, True, True)] * 2
    assert all(isinstance(r.ades_subindic, AdESPassed) for r in long_term), [r.failure_msg for r in long_term]
    assert report.ok, report.to_text()
    assert [(s.signer, s.level) for s in report.signatures] == [("Ann Aerts", "B-LTA"), ("Bart Baert", "B-LTA")]

    signatures = [r for r in pdfsig(pdf, root) if "ETSI.CAdES.detached" in r.raw]
    assert [(r.signer, r.signature_valid, r.certificate_trusted) for r in signatures] == [
        ("Ann Aerts", True, True),
        ("Bart Baert", True, True),
    ], [r.raw for r in signatures]


async def test_archive_retimestamp_renews_the_document_timestamp_of_completed_documents_that_need_it(
    shell: dict[str, str], database_url: str, signing_pool: SigningPool, render_pool: RenderPool, tsa: TimestampAuthority
) -> None:
    """`paraaf archive retimestamp --before D` adds a second document timestamp (kept as the next version) when the
    first's TSA certificate expires before D, none when it lasts past D; every signature stays B-LTA and valid."""
    stamping = Stamping(tsa_url=tsa.url)
    async with SignerHarness(
        database_url, signing_pool, render_pool, public_url="http://127.0.0.1:9", stamping=stamping
    ) as signer:
        document_id, pdf = await _signed_by_two(signer)
        [signed] = [s for s in await signer.published("signature.signed") if s["revision"] == 2]
        completed = DocumentCompleted(correlation_id=document_id, org="default", pdf_sha256=signed["pdf_sha256"], signatures=[])
        await signer.in_store(lambda store: handlers.on_document_completed(completed, store, links=signer.links()))
        root = (await signer.client.get("/ca.pem")).content
        operator = {**shell, "PARAAF_KEY_SECRET": KEY_SECRET, "PARAAF_TSA_URL": tsa.url}
        # The TSA's unit certificate (what signs the timestamps) ends before its root does.
        past_unit_expiry = x509.load_pem_x509_certificate(tsa.root_pem).not_valid_after_utc
        soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
        kept = await asyncio.to_thread(paraaf, operator, "archive", "retimestamp", "--before", soon)
        assert kept.returncode == 0 and kept.stdout.startswith("0 of 1 "), kept.stdout + kept.stderr
        renewed = await asyncio.to_thread(paraaf, operator, "archive", "retimestamp", "--before", f"{past_unit_expiry:%Y-%m-%d}")
        assert renewed.returncode == 0 and renewed.stdout.startswith("1 of 1 "), renewed.stdout + renewed.stderr
        revision, latest = await signer.document(document_id)

    assert revision == 2 and latest.startswith(pdf), "the renewal is an incremental update of the completed version"
    reader = PdfFileReader(io.BytesIO(latest), strict=False)
    assert len(reader.embedded_timestamp_signatures) == 2
    with network_cut() as cut:
        report = await verify_pdf_async(latest, load_roots(root + tsa.root_pem))
    assert cut.attempts == []
    assert report.ok and [s.level for s in report.signatures] == ["B-LTA", "B-LTA"], report.to_text()
    assert len(report.document_timestamps) == 2
    signatures = [r for r in pdfsig(latest, root) if "ETSI.CAdES.detached" in r.raw]
    assert [(r.signature_valid, r.certificate_trusted) for r in signatures] == [(True, True)] * 2


def _b_t_signature(city: SigningCity, pdf: bytes, tsa_url: str) -> bytes:
    """A PAdES signature with a timestamp and no validation data, as a signer outside Paraaf makes one (B-T)."""
    key, cert, chain = city.credentials("Carla Claes")
    registry = SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(c) for c in chain])
    key_object = serialization.load_der_private_key(key, password=None)
    signer = CachedKeySigner(asn1_x509.Certificate.load(cert), key_object, registry)  # type: ignore[arg-type]
    meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES)
    output = io.BytesIO()
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=HTTPTimeStamper(tsa_url))
    asyncio.run(pdf_signer.async_sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=output))
    return output.getvalue()


async def test_verify_names_each_signature_s_pades_level_without_touching_the_network(
    tsa: TimestampAuthority, tmp_path: Path
) -> None:
    """With every connection refused, `paraaf verify`'s report says B-B for a signature without a timestamp, B-T for
    one without validation data, B-LT for Paraaf's with a TSA, and B-LTA once `retimestamp` covers it; the command
    itself, run in a network namespace with no interface at all, says the same."""
    city = SigningCity(crl_url="http://127.0.0.1:9/ca/default.crl")
    first = await asyncio.to_thread(sign, city.job(make_pdf(1), 1, "Ann Aerts", planned=2))
    second = await asyncio.to_thread(
        sign,
        city.job(first.pdf, 2, "Bart Baert", planned=2, placeholders=first.placeholders, tsa_url=tsa.url, crls_der=(city.crl(),)),
    )
    root_der = load_roots(city.root_pem)[0].dump()
    archived = await asyncio.to_thread(retimestamp, second.pdf, tsa.url, (root_der,))
    outside = await asyncio.to_thread(_b_t_signature, city, make_pdf(1), tsa.url)
    roots = load_roots(city.root_pem + tsa.root_pem)
    with network_cut() as cut:
        reports = [await verify_pdf_async(pdf, roots) for pdf in (second.pdf, archived, outside)]
    assert cut.attempts == []
    assert all(r.ok for r in reports), [r.to_text() for r in reports]
    assert [[s.level for s in r.signatures] for r in reports] == [["B-B", "B-LT"], ["B-B", "B-LTA"], ["B-T"]]
    assert "level:         PAdES B-LTA" in reports[1].to_text()

    (tmp_path / "archived.pdf").write_bytes(archived)
    (tmp_path / "roots.pem").write_bytes(city.root_pem + tsa.root_pem)
    command = [
        sys.executable,
        "-m",
        "services",
        "verify",
        str(tmp_path / "archived.pdf"),
        "--trust",
        str(tmp_path / "roots.pem"),
        "--json",
    ]
    offline = await asyncio.to_thread(
        subprocess.run, ["unshare", "--user", "--map-root-user", "--net", *command], capture_output=True, text=True, cwd=ROOT
    )
    if "unshare:" in offline.stderr:
        pytest.skip(f"this machine gives no network namespace: {offline.stderr.strip()}")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert [s["level"] for s in json.loads(offline.stdout)["signatures"]] == ["B-B", "B-LTA"]


async def test_a_tsa_whose_certificate_is_not_from_the_configured_roots_signs_nothing(tsa: TimestampAuthority) -> None:
    """PARAAF_TSA_ROOTS naming another root: signing stops with TimestampUnavailable (an incident), naming the TSA."""
    city = SigningCity()
    elsewhere = load_roots(TimestampAuthority().root_pem)[0].dump()
    with pytest.raises(TimestampUnavailable, match="does not chain to PARAAF_TSA_ROOTS"):
        await asyncio.to_thread(sign, city.job(make_pdf(1), 1, "Ann Aerts", tsa_url=tsa.url, tsa_roots_der=(elsewhere,)))


async def test_the_crl_is_served_for_an_organisation_with_a_ca_and_no_ca_is_made_for_another(signer: SignerHarness) -> None:
    """GET /ca/default.crl: a DER CRL signed by the root /ca.pem serves; /ca/elsewhere.crl: 404 naming the
    organisation, and no certificate authority is created for it."""
    root = x509.load_pem_x509_certificate((await signer.client.get("/ca.pem")).content)
    served = await signer.client.get("/ca/default.crl")
    assert served.status_code == 200 and served.headers["content-type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(served.content).is_signature_valid(root.public_key())
    unknown = await signer.client.get("/ca/elsewhere.crl")
    assert unknown.status_code == 404 and "elsewhere" in unknown.json()["error"]
    assert await signer.pool.fetchval("SELECT count(*) FROM signer.authorities") == 1
