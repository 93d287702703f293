"""How the cost of a document grows with its pages and its signers: for 1, 10
and 100 pages and 1, 5 and 10 signers, the CPU work the pipeline does on the
PDF itself, measured with the services' own functions in this process:

* intake's check of the submitted PDF (``services.intake.pdf.inspect_pdf``),
  once per document;
* the signer's search for ``[SIGnn]`` placeholders (``find_placeholders``),
  once per document;
* every signature, incrementally on the growing file (``pades.sign``: cached
  key, reserved bytes, Paraaf's stamp, the verification footer on the first).

The other hops (events, mails, pages) do not read the PDF: they carry its
sha256, so their cost per signature does not depend on its size.

Run: ``python -m bench.scaling``. The PDFs are made by tests/support/pdfs.py
(a line of text a page): real scans weigh more per page.
"""

import statistics
import time
from collections.abc import Callable

from bench.limits import signed_chain
from services.intake.pdf import Limits, inspect_pdf
from services.signer.pades import find_placeholders
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity

__all__ = ["main"]

PAGES = (1, 10, 100)
SIGNERS = (1, 5, 10)


def _seconds(work: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(repeat: int = 3) -> list[tuple[int, int, float, float, list[float], int]]:
    """(pages, signers, intake's check s, placeholder search s, seconds of each signature in order, final bytes);
    each figure the median of ``repeat`` runs."""
    credentials = SigningCity().credentials("Ann Aerts", "algemeen directeur")
    signed_chain(make_pdf(1), 1, credentials)  # warm up: the font, the key
    rows = []
    for pages in PAGES:
        pdf = make_pdf(pages, text="Paraaf scaling bench")
        check = _seconds(lambda pdf=pdf: inspect_pdf(pdf, Limits(max_bytes=50 * 1_048_576)), repeat)
        search = _seconds(lambda pdf=pdf: find_placeholders(pdf), repeat)
        for signers in SIGNERS:
            chains = [signed_chain(pdf, signers, credentials) for _ in range(repeat)]
            times = [statistics.median(chain[0][n] for chain in chains) for n in range(signers)]
            rows.append((pages, signers, check, search, times, len(chains[0][1])))
    return rows


def report(rows: list[tuple[int, int, float, float, list[float], int]]) -> str:
    lines = [
        "scaling: CPU work on the PDF per document (one process, this machine; ms, medians of 3)",
        f"{'pages':>5} {'signers':>7} {'intake check':>12} {'placeholders':>12} {'1st signature':>13} {'last signature':>14}"
        f" {'all signatures':>14} {'per signature':>13} {'final size':>10}",
    ]
    for pages, signers, check, search, times, size in rows:
        lines.append(
            f"{pages:5d} {signers:7d} {check * 1000:12.1f} {search * 1000:12.1f} {times[0] * 1000:13.1f} {times[-1] * 1000:14.1f}"
            f" {sum(times) * 1000:14.1f} {sum(times) / signers * 1000:13.1f} {size / 1024:8.0f} KB"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    print(report(measure()), flush=True)


if __name__ == "__main__":
    main()
