"""CPU time of the signing page's pictures per signature: the bench's documents
(1 and 30 pages) through flows of 1 to 3 signers, signed with the signer's
own code beforehand (untimed); then, for every version a signer opens (the
unsigned one for the first, each signed one for the next), what the signing
page's routes ask of the render pool: the page sizes when the page opens, the
first page's picture when the browser loads it (known_* first, as
services/signer/http/_signing.py does; a miss there means fetching the PDF
from the database, counted as ``fetches``). Between two versions the pool
is told what the signature changed (``RenderPool.derive``), as the signer
does right after signing. Then the same for long flows: 30 pages, 5 and 10
signers.

CPU = this process + the render worker (from /proc), so the pipe to the
worker counts too. Each round uses a fresh pool (a warm worker, an empty
cache). Run: ``python -m bench.pictures [--rounds N --passes N]``; compare two trees by
running it from each in turn.
"""

import argparse
import asyncio
import hashlib
import os
import statistics
import time
from datetime import UTC, datetime

from bench.limits import _SIGNER
from services.signer.fonts import DEFAULT_FONT
from services.signer.pades import SigningJob, sign
from services.signer.render import RenderPool
from services.signer.stamps import stamp_text
from services.signer.verification import footer_text, new_code, new_secret
from tests.support.pdfs import make_pdf
from tests.support.signing import SigningCity

FLOWS = [(pages, signers) for pages in (1, 30) for signers in (1, 2, 3)]


LONG_FLOWS = [(30, 5), (30, 10)]

# A version a signer opens, and what the signature that made it changed (None: the unsigned one, or any page).
Opened = tuple[bytes, frozenset[int] | None]


def versions(pdf: bytes, signers: int, credentials: tuple[bytes, bytes, tuple[bytes, ...]]) -> list[Opened]:
    """The versions the flow's signers open, one each: the unsigned PDF, then each signature's."""
    key, cert, chain = credentials
    opened: list[Opened] = [(pdf, None)]
    for number in range(1, signers):
        footer = footer_text("nl", "http://127.0.0.1:8083/check", new_code(), new_secret()) if number == 1 else None
        result = sign(SigningJob(
            pdf=opened[-1][0], key_der=key, cert_der=cert, chain_der=chain, number=number,
            stamp_text=stamp_text(_SIGNER, None, datetime.now(UTC), "Europe/Brussels"), signer_name=_SIGNER.name,
            reason="Ondertekend", planned=signers, font_path=DEFAULT_FONT, footer=footer,
        ))
        opened.append((result.pdf, result.changed_pages))
    return opened


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(opened: list[Opened], passes: int, derive: bool = True) -> tuple[float, int]:
    """CPU seconds for every opened version's page and first picture, ``passes`` times over (each with a fresh pool:
    the clock ticks in 10 ms), and the PDF fetches they needed."""
    cpu, fetches = 0.0, 0
    for _ in range(passes):
        seconds, fetched = await one_pass(opened, derive)
        cpu, fetches = cpu + seconds, fetches + fetched
    return cpu, fetches


async def one_pass(opened: list[Opened], derive: bool = True) -> tuple[float, int]:
    pool = RenderPool(1)
    try:
        await pool._pool.start_all()
        worker = pool._pool._all[0].process.pid
        fetches, started, before = 0, time.process_time() + _cpu(worker), ""
        for pdf, changed in opened:
            digest = hashlib.sha256(pdf).hexdigest()
            if derive and changed is not None:  # the signer, right after the signature that made this version
                pool.derive(digest, before, changed)
            before = digest
            if pool.known_sizes(digest) is None:  # the signing page
                fetches += 1
                await pool.page_sizes(digest, pdf)
            if pool.known_page(digest, 0) is None:  # its first picture
                fetches += 1
                await pool.page_sizes(digest, pdf)
                await pool.page(digest, pdf, 0)
        return time.process_time() + _cpu(worker) - started, fetches
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=4, help="fresh pools a round, each through every version")
    parser.add_argument("--no-derive", action="store_true", help="every version drawn anew, as before RenderPool.derive")
    args = parser.parse_args(argv)
    credentials = SigningCity().credentials("Ann Aerts", "algemeen directeur")
    for label, flows in (("the pipeline's flows", FLOWS), ("30 pages, 5 and 10 signers", LONG_FLOWS)):
        opened = [
            version
            for pages, signers in flows
            for version in versions(make_pdf(pages, text=f"Paraaf bench, {pages} page(s)"), signers, credentials)
        ]
        seconds = []
        for _ in range(args.rounds):
            cpu, fetches = asyncio.run(one_round(opened, args.passes, not args.no_derive))
            seconds.append(cpu)
        per_signature = [1000 * s / len(opened) / args.passes for s in seconds]
        print(
            f"pictures, {label}: {len(opened)} versions opened ({len(flows)} flows), "
            f"{fetches / len(opened) / args.passes:.1f} PDF fetches each, CPU ms per signature: median "
            f"{statistics.median(per_signature):.2f} (rounds: {', '.join(f'{ms:.2f}' for ms in per_signature)})"
        )


if __name__ == "__main__":
    main()
