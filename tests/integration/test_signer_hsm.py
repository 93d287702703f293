"""The signer service as its own process with its keys in a PKCS#11 token
(PARAAF_PKCS11_MODULE, _TOKEN and _PIN set to a SoftHSM2 token, as an operator
sets them): one real signature through the service, checked by pdfsig."""

from shared.blobs import get_blob
from tests.conftest import Infra
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
