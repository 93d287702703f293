"""The signer service as its own process with its keys in a PKCS#11 token
(PARAAF_PKCS11_MODULE, _TOKEN and _PIN set to a SoftHSM2 token, as an operator
sets them): one real signature through the service, checked by pdfsig, and
the operator's `paraaf setup` and `paraaf ca export` with the CA in the token."""

import json
from pathlib import Path

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shared.blobs import get_blob
from tests.conftest import Infra
from tests.support.commands import paraaf
from tests.support.pdfs import make_pdf
from tests.support.signer_process import SIGNER, SignerUnderTest
from tests.support.softhsm import SoftHsm
from tests.support.validate import pdfsig


async def test_a_signature_through_the_service_with_its_keys_in_softhsm2_is_valid_and_trusted_in_pdfsig(
    infra: Infra, softhsm: SoftHsm
) -> None:
    """Ann presses Sign on her link; the signed PDF's signature is valid and chains to the CA pdfsig is given, and the
    database holds only where the CA's and Ann's keys are in the token, no key."""
    async with SignerUnderTest(infra.database_url, infra.amqp_url, logs="signer-hsm", **softhsm.env()) as service:
        await service.sign_all(await service.open_pages(await service.requests(make_pdf(1), 1)), 1)
        pdf = await service.signed_pdf()
        root = await service.system.root_certificate()
        stored = await service.db.fetch(
            "SELECT key_pem FROM signer.authorities UNION ALL SELECT key_pem FROM signer.certificates"
        )
        original = await get_blob(service.db, await service.db.fetchval("SELECT sha256 FROM blobs.versions WHERE revision = 0"))
    (report,) = pdfsig(pdf, root)
    assert report.signer == SIGNER.name
    assert report.signature_valid and report.certificate_trusted, report.raw
    assert pdf.startswith(original), "the signature is an incremental update of the document the signer was asked to sign"
    assert len(stored) == 2 and all(row["key_pem"].startswith("pkcs11:id=") for row in stored), stored


async def test_with_the_ca_in_a_token_setup_certifies_the_audit_sealing_key_there_and_ca_export_prints_its_root(
    shell: dict[str, str], softhsm: SoftHsm, tmp_path: Path
) -> None:
    """An operator with PARAAF_PKCS11_* set runs `paraaf setup`: the organisation's CA is made in the token, the audit's
    sealing certificate is signed there and chains to the root `paraaf ca export` prints; no CA key is in the database."""
    operator = {
        **shell,
        **softhsm.env(),
        "PARAAF_KEY_SECRET": "a-long-random-secret-for-this-test",
        "PARAAF_DATA_DIR": str(tmp_path),
    }
    done = paraaf(operator, "setup")
    assert done.returncode == 0 and "certified by the CA of org" in done.stderr, done.stdout + done.stderr
    exported = paraaf(operator, "ca", "export")
    assert exported.returncode == 0, exported.stderr
    sealing = x509.load_pem_x509_certificate(
        json.loads((Path(shell["PARAAF_SECRETS_DIR"]) / "audit.json").read_text())["seal_cert"].encode()
    )
    root = x509.load_pem_x509_certificate(exported.stdout.encode())
    root.public_key().verify(sealing.signature, sealing.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg]
    conn = await asyncpg.connect(shell["PARAAF_DATABASE_URL"])
    try:
        assert (await conn.fetchval("SELECT key_pem FROM signer.authorities")).startswith("pkcs11:id=")
    finally:
        await conn.close()
