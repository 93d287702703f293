"""The pipeline bench's stock pyHanko limit (bench/stock_pyhanko.py) signs what the signer signs, the way the
signer does (a certification, then the fields it prepared, each stamped), with pyHanko as released: pyHanko and
poppler's pdfsig accept every signature, and its process never holds Paraaf's pyHanko fast paths."""

import asyncio
import subprocess
import sys

from bench import stock_pyhanko
from bench.limits import signed_chain
from services.signer import pades
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity
from tests.support.validate import pdfsig, pyhanko_validate


def test_the_stock_loop_reserves_what_the_signer_reserves() -> None:
    assert stock_pyhanko.BYTES_RESERVED == pades.BYTES_RESERVED


async def test_a_three_signature_chain_of_the_stock_loop_is_valid_for_pyhanko_and_pdfsig() -> None:
    city = SigningCity()
    credentials = city.credentials("Ann Aerts", "algemeen directeur")
    signer = stock_pyhanko._CachedKeySigner(*credentials)
    font = stock_pyhanko.StampFont(stock_pyhanko.reduced_font(stock_pyhanko.DEFAULT_FONT))
    pdf = await stock_pyhanko._chain(make_pdf(2), 3, signer, font)
    pyhanko = await pyhanko_validate(pdf, city.root_pem)
    assert [(r.field, r.intact, r.valid, r.trusted) for r in pyhanko] == [
        (f"Signature{n}", True, True, True) for n in (1, 2, 3)
    ]
    poppler = await asyncio.to_thread(pdfsig, pdf, city.root_pem)
    assert [r.signature_valid for r in poppler] == [True] * 3
    # pdfsig (NSS) trusts the certificate of the first signature only when one certificate signs three times
    # ("Unknown issue with Certificate"); the signer's own code, one signer three times, gets the same verdicts.
    _, own = await asyncio.to_thread(signed_chain, make_pdf(2), 3, credentials)
    assert [r.certificate_trusted for r in poppler] == [r.certificate_trusted for r in pdfsig(own, city.root_pem)]
    assert poppler[0].certificate_trusted


async def test_the_stock_loop_runs_in_a_process_without_paraaf_s_fast_paths() -> None:
    """In this process the fast paths may be installed (the signer's modules are imported); the loop's own process
    checks they are not, before and after signing, and reports a rate."""
    city = SigningCity()
    rate = await stock_pyhanko.stock_pyhanko([(make_pdf(1), 2)], city.credentials("Ann Aerts"), 0.2)
    assert rate > 0
    probe = "import bench.stock_pyhanko as s; s._fast_paths_absent(); import services.signer.pades; s._fast_paths_absent()"
    refused = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "not pyHanko as released" in refused.stderr
