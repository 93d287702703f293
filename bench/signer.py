"""Signatures per second: the signer service against a bare pyHanko loop, on
the same 1-page and 30-page PDFs, in the same run.

* **bare**: one process, one loop — pyHanko's ``PdfSigner`` with a cached
  parsed key, ``bytes_reserved`` set, PAdES, and a visible text stamp in the
  same reduced DejaVu font, drawn by pyHanko's own font engine as documented
  (which parses and subsets the font per signature). Each signature first
  prints the verification code on every page, as the service's first
  signature of a document does (every signature here is one). Also in the same loop:
  the service's own stamp (its style and its font engine, which reuses the
  parsed font and the subset per set of glyphs), and an invisible signature,
  to see what each stamp costs.
* **service**: ``python -m services.signer`` as its own process, on a fresh
  database and RabbitMQ vhost set up as `paraaf setup` does
  (tests/support/signer_process.py); requests come in as ``signature.requested``
  events published as the router does, links are asked of the signer's link
  API when ``esign.commands`` says to mail one, as the notifier does, and
  each signature is what a signer's browser does: POST ``/s/<token>/sign``
  (the page itself is opened beforehand, untimed). One signature in flight
  at a time, like the bare loop; then two in flight (the service has two
  signing workers) as a throughput figure.

The two sides take turns signature by signature and report medians, because
the machine (2 cores) is shared and noisy. Run: ``python -m bench.signer`` (``--quick``
for a short run). Needs PostgreSQL and RabbitMQ as the tests do.
"""

import argparse
import asyncio
import io
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.stamp import TextStampStyle

from services.signer import stamps
from services.signer.code_stamp import stamp_footer
from services.signer.fonts import DEFAULT_FONT, StampFont, reduced_font
from services.signer.pades import BYTES_RESERVED, _signer
from services.signer.pades import _stamp_style as pades_stamp_style
from services.signer.verification import footer_text, new_code, new_secret
from tests.support.pdfs import make_pdf
from tests.support.signer_process import SIGNER, SignerUnderTest
from tests.support.signing import SigningCity

__all__ = ["main"]

LOCAL_DATABASE = os.environ.get("PARAAF_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCAL_AMQP = os.environ.get("PARAAF_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# --- the bare loop -----------------------------------------------------------------------------


def _stamp_style(stamp: str) -> TextStampStyle:
    if stamp == "paraaf":
        return pades_stamp_style(DEFAULT_FONT)
    font = StampFont(reduced_font(DEFAULT_FONT))  # pyHanko's own engine: parses and subsets the font every time
    return TextStampStyle(stamp_text="%(paraaf)s", border_width=1, text_box_style=TextBoxStyle(font=font, font_size=9))


def _bare_once(pdf: bytes, credentials: tuple[bytes, bytes, tuple[bytes, ...]], *, stamp: str | None) -> bytes:
    key, cert, chain = credentials
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    # The verification code on every page, as the service's first signature of a document prints it (each of its
    # signatures here is one): PDF work the service does, not overhead, ~0.35 ms a page.
    stamp_footer(writer, footer_text("nl", "http://127.0.0.1:8083/check", new_code(), new_secret()))
    page_ref, _ = writer.find_page_for_modification(-1)
    box = stamps.bottom_box(tuple(float(v) for v in page_ref.get_object()["/MediaBox"]), 0) if stamp else None
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES, name=SIGNER.name
        ),
        signer=_signer(key, cert, chain),
        stamp_style=_stamp_style(stamp or "pyhanko"),
        new_field_spec=fields.SigFieldSpec("Signature1", on_page=-1, box=box),
    )
    output = io.BytesIO()
    text = stamps.stamp_text(SIGNER, None, datetime.now(UTC), "Europe/Brussels")
    asyncio.run(
        pdf_signer.async_sign_pdf(writer, bytes_reserved=BYTES_RESERVED, appearance_text_params={"paraaf": text}, output=output)
    )
    return output.getvalue()


def bare_loop(
    pdf: bytes, credentials: tuple[bytes, bytes, tuple[bytes, ...]], count: int, *, stamp: str | None = "pyhanko"
) -> list[float]:
    """Seconds per signature, one after the other in this process. ``stamp``: "pyhanko" (pyHanko's text stamp as
    documented, its font engine parsing and subsetting per signature), "paraaf" (the service's stamp and font
    engine, in this loop), None (an invisible signature)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        _bare_once(pdf, credentials, stamp=stamp)
        times.append(time.perf_counter() - started)
    return times


# --- the service -------------------------------------------------------------------------------


# --- the run -----------------------------------------------------------------------------------


_BARE: tuple[tuple[str, str | None], ...] = (("bare", "pyhanko"), ("bare, paraaf stamp", "paraaf"), ("bare, invisible", None))


def _rotated(items: tuple[tuple[str, str | None], ...], turn: int) -> tuple[tuple[str, str | None], ...]:
    start = turn % len(items)
    return items[start:] + items[:start]


async def run(count: int, rounds: int) -> dict[str, dict[str, float]]:
    city = SigningCity()
    credentials = city.credentials(SIGNER.name, SIGNER.title)
    files = {"1 page": make_pdf(1), "30 pages": make_pdf(30)}
    results: dict[str, dict[str, list[float]]] = {
        size: {"bare": [], "bare, paraaf stamp": [], "bare, invisible": [], "service": [], "service x2": []}
        for size in files
    }
    async with SignerUnderTest(LOCAL_DATABASE, LOCAL_AMQP, remove_accounts=True) as service:
        for pdf in files.values():  # warm up: workers spawned, font reduced, keys cached, pages rendered
            for stamp in ("pyhanko", "paraaf", None):
                await asyncio.to_thread(lambda pdf=pdf, stamp=stamp: bare_loop(pdf, credentials, 3, stamp=stamp))
            await service.sign_all(await service.open_pages(await service.requests(pdf, 4)), 2)
        for _ in range(rounds):
            for size, pdf in files.items():
                # One of each in turn, so a burst of load from elsewhere on the machine hits both sides alike.
                opened = await service.open_pages(await service.requests(pdf, count))
                for turn, page in enumerate(opened):
                    # The three bare signatures in a rotating order: the one after pyHanko's stock stamp (which
                    # parses and subsets the font, churning memory) ran ~4 % slower, whichever it was.
                    for label, stamp in _rotated(_BARE, turn):
                        results[size][label] += await asyncio.to_thread(
                            lambda pdf=pdf, stamp=stamp: bare_loop(pdf, credentials, 1, stamp=stamp)
                        )
                    times, _ = await service.sign_all([page], 1)
                    results[size]["service"] += times
                opened = await service.open_pages(await service.requests(pdf, 2 * count))
                _, wall = await service.sign_all(opened, 2)
                results[size]["service x2"].append(wall / (2 * count))
    return {size: {k: statistics.median(v) for k, v in by.items()} for size, by in results.items()}


STAMP_GOAL, SERVICE_GOAL = 1.3, 1.15


def report(medians: dict[str, dict[str, float]]) -> str:
    lines = [
        "signer: signatures per second (medians; RSA-2048, PAdES, reserved bytes, cached key)",
        f"{'':10} {'bare':>9} {'bare':>9} {'bare, no':>9} {'service':>9} {'service,':>9}"
        f" {'stamp/no-stamp':>15} {'stamp/no-stamp':>15} {'service/bare':>13} {'service/bare':>13}",
        f"{'':10} {'pyHanko':>9} {'Paraaf':>9} {'stamp':>9} {'':>9} {'2 in':>9}"
        f" {'pyHanko':>15} {'Paraaf':>15} {'pyHanko':>13} {'Paraaf':>13}",
        f"{'':10} {'stamp':>9} {'stamp':>9} {'':>9} {'':>9} {'flight':>9}"
        f" {'stamp':>15} {'stamp':>15} {'stamp':>13} {'stamp':>13}",
    ]
    for size, m in medians.items():
        rates = (m["bare"], m["bare, paraaf stamp"], m["bare, invisible"], m["service"], m["service x2"])
        lines.append(
            f"{size:10} " + " ".join(f"{1 / t:7.1f}/s" for t in rates)
            + f" {m['bare'] / m['bare, invisible']:14.2f}x {m['bare, paraaf stamp'] / m['bare, invisible']:14.2f}x"
            f" {m['service'] / m['bare']:12.2f}x {m['service'] / m['bare, paraaf stamp']:12.2f}x"
        )
    lines += [
        f"stamp/no-stamp: time of a signature with its stamp over one without, same loop; goal <= {STAMP_GOAL}x"
        " for the stamp Paraaf draws (the pyHanko column is the stock engine, for reference)",
        f"service/bare: time per signature of the service (one in flight) over the bare loop's; goal <= {SERVICE_GOAL}x"
        " against the bare loop with pyHanko's stamp; against the loop with Paraaf's stamp it is what the service adds",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.signer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=30, help="signatures per side, size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 signatures, 1 round")
    parser.add_argument("--json", type=Path, help="also write the medians (seconds per signature) here")
    args = parser.parse_args(argv)
    count, rounds = (10, 1) if args.quick else (args.count, args.rounds)
    medians = asyncio.run(run(count, rounds))
    print(report(medians))
    if args.json:
        args.json.write_text(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
