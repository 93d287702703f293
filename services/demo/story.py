"""``paraaf demo``: a story played on the running demo city (`make run`) for a person watching the terminal.

The minutes package sends twelve college decisions, the permits package a permit with signature markers, the HR
package a confidential evaluation. The mayor is on leave (registered with `paraaf absence add`, as an operator
would), so her substitute signs "wnd. burgemeester"; the director declines one decision with a reason; the mail
server goes down for a while (the mail catcher answers 421) and the notifier's retries carry the mail through.
The signers sign through the links mailed to them, read from the mail catcher as a person would click them, each
printed so one can click it instead. The outcomes come back on each source's own queue; the signed PDFs are saved.
"""

import asyncio
import base64
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

from services.demo.letters import letter
from services.source.client import FINAL, Document, SourceClient, source_client
from shared import clock
from shared.contract import Outcome

__all__ = ["Demo", "Expected", "story"]

_LINK = re.compile(r"https?://[^\s<>\"]+/s/[A-Za-z0-9_-]+")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')

DECISIONS = (
    "Aanstelling van een deskundige mobiliteit",
    "Gunning van de opdracht voor het onderhoud van de stadsparken",
    "Subsidie aan de jeugdbeweging Chiro Sint-Jan",
    "Goedkeuring van de verkeersmaatregelen voor de kerstmarkt",
    "Aankoop van twee elektrische bestelwagens",
    "Toelating voor het gebruik van de stadsfeestzaal",
    "Herinrichting van de Marktstraat: ontwerp",
    "Verlenging van de huurovereenkomst voor de bibliotheek",
    "Premie voor dakisolatie: toekenningen november",
    "Samenwerkingsovereenkomst met het OCMW",
    "Aanpassing van het retributiereglement voor parkeren",
    "Organisatie van de nieuwjaarsreceptie",
)
DECLINED = 7  # the decision the director sends back
DECLINE_REASON = "Het advies van de financieel directeur ontbreekt in de bijlagen; graag opnieuw indienen met het advies."


@dataclass
class Expected:
    source: str
    document: Document
    outcome: str  # "completed" or "declined"
    label: str  # how the story's lines name it
    decline_by: str | None = None  # the person who declines it, through her link
    last: Outcome | None = None
    saved: Path | None = None
    events: list[str] = field(default_factory=list)


def story(stamp: str) -> list[Expected]:
    """The documents of one run: their refs carry ``stamp`` so every run is new to intake."""
    return [*_decisions(stamp), _permit(stamp), _evaluation(stamp)]


def _decisions(stamp: str) -> list[Expected]:
    return [
        Expected(
            "notula",
            Document(
                external_ref=f"demo-{stamp}/besluit-{number:02}",
                title=f"Collegebesluit {number:02}: {subject}",
                pdf=letter(f"Collegebesluit {number:02}", [subject, "", "Het college van burgemeester en schepenen beslist:",
                                                          "artikel 1 - het voorstel wordt goedgekeurd.", "", "[SIG01]", "", "", "", "[SIG02]"]),
                filename=f"collegebesluit-{number:02}.pdf", submitted_by="elen.elaut", flow="collegebesluit",
            ),
            "declined" if number == DECLINED else "completed",
            f"Collegebesluit {number:02}",
            decline_by="ann.aerts" if number == DECLINED else None,
        )
        for number, subject in enumerate(DECISIONS, start=1)
    ]


def _permit(stamp: str) -> Expected:
    return Expected(
        "omgeving",
        Document(
            external_ref=f"demo-{stamp}/vergunning-0815", title="Omgevingsvergunning 2026/0815: carport, Kerkstraat 12",
            pdf=letter("Omgevingsvergunning 2026/0815", [
                "Carport aan de Kerkstraat 12", "", "De vergunning wordt verleend onder de gewone voorwaarden.", "",
                "Voor het college van burgemeester en schepenen:", "",
                "[SIG01]                                                         [SIG02]",
            ]),
            filename="omgevingsvergunning-0815.pdf", submitted_by="olga.omgeving", flow="omgevingsvergunning",
        ),
        "completed",
        "Vergunning 0815",
    )


def _evaluation(stamp: str) -> Expected:
    return Expected(
        "personeel",
        Document(
            external_ref=f"demo-{stamp}/evaluatie-kc", title="Evaluatieverslag K. Claes", confidential=True,
            pdf=letter("Evaluatieverslag (vertrouwelijk)", ["Medewerker: Karel Claes", "Beoordeling: goed", "", "[SIG01]"]),
            filename="evaluatie-karel-claes.pdf", submitted_by="hilde.hendrickx", flow="evaluatieverslag",
        ),
        "completed",
        "Evaluatie K. Claes",
    )


_TRIES = 3  # loads of a signing page before the demo gives a link up


class Demo:
    def __init__(
        self, *, console: Console, catcher_url: str, source_urls: dict[str, str], saved_in: Path, public_url: str,
        outage_seconds: float, paraaf: Callable[..., Awaitable[str]], pace: float = 0.0, parallel: int = 1,
    ) -> None:
        self.pace = pace
        self._signing = asyncio.Semaphore(parallel)
        self.say = console.print
        self.console = console
        self.catcher = catcher_url.rstrip("/")
        self.source_urls = source_urls
        stamp = f"{clock.now():%Y%m%d-%H%M%S}"
        self.saved_in = saved_in / stamp
        self.public_url = public_url.rstrip("/")
        self.outage_seconds = outage_seconds
        self.paraaf = paraaf
        self.expected = story(stamp)
        self._mail_seen = 0
        self._refused = 0  # deliveries the mail catcher refused before the story began

    async def play(self) -> bool:
        """The whole story; whether every document ended as expected."""
        async with httpx.AsyncClient(timeout=30) as http, AsyncExitStack() as stack:
            await self._catcher_as_it_is(http)
            await self._mayor_on_leave()
            clients = {
                source: await stack.enter_async_context(source_client(self.source_urls[source], source))
                for source in ("notula", "omgeving", "personeel")
            }
            follow = [asyncio.create_task(self._follow(clients[e.source], e)) for e in self.expected]
            await self._submit(clients)
            signing = asyncio.create_task(self._sign_as_mailed(http))
            try:
                await asyncio.gather(*follow)
            finally:
                signing.cancel()
        self._summary()
        return all(e.last is not None and e.last.status == e.outcome for e in self.expected)

    async def _mayor_on_leave(self) -> None:
        today = clock.now().astimezone(ZoneInfo("Europe/Brussels")).date()
        self.say("\n[bold]1. The mayor, Bart Baert, is on leave today.[/] An operator registers it, as she would:")
        command = ["absence", "add", "bart.baert", "--from", f"{today}", "--to", f"{today + timedelta(days=1)}",
                   "--note", "verlof (paraaf demo)"]
        self.say(f"   $ paraaf {' '.join(command)}")
        self.say(f"   {await self.paraaf(*command)}")
        self.say("   What the mayor is asked to sign goes to the first substitute, Sofie Smet, who signs as"
                 " [italic]wnd. burgemeester[/] (the stamp on the PDF says so).")

    async def _submit(self, clients: dict[str, SourceClient]) -> None:
        decisions = [e for e in self.expected if e.source == "notula"]
        self.say(f"\n[bold]2. The minutes package (source notula) sends a batch of {len(decisions)} college decisions.[/]")
        for entry in decisions:
            await clients["notula"].submit(entry.document)
        await asyncio.sleep(1)  # their first mails go out before the mail server goes down
        self.say(f"\n[bold]3. The mail server goes down for {self.outage_seconds:g} seconds[/] (the mail catcher answers"
                 " 421 'try again later'); the permits package sends a permit with signature markers [SIG01] [SIG02].")
        await self._outage()
        permit = next(e for e in self.expected if e.source == "omgeving")
        await clients["omgeving"].submit(permit.document)
        self.say("\n[bold]4. HR sends a confidential evaluation[/] (only the submitter and the signers may see it).")
        evaluation = next(e for e in self.expected if e.source == "personeel")
        await clients["personeel"].submit(evaluation.document)
        self.say("\n[bold]5. The signers open the links mailed to them[/] (each printed: click one yourself instead if you like).")

    async def _outage(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            (await http.post(f"{self.catcher}/outage", json={"seconds": self.outage_seconds})).raise_for_status()
        asyncio.get_running_loop().call_later(self.outage_seconds, self._outage_over)

    def _outage_over(self) -> None:
        self.say("   [green]The mail server is back[/]; the notifier delivers what it kept (it retries, it does not lose mail).")

    async def _catcher_as_it_is(self, http: httpx.AsyncClient) -> None:
        """What the mail catcher held before the story: mails the story's signers leave alone, refusals it does not count."""
        answer = (await http.get(f"{self.catcher}/mails.json")).raise_for_status().json()
        self._mail_seen = max((m["number"] for m in answer["mails"]), default=0)
        self._refused = answer["refused"]

    async def _sign_as_mailed(self, http: httpx.AsyncClient) -> None:
        titles = {e.document.title: e for e in self.expected}
        opening: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._open_new_mail(http, titles, opening)
                await asyncio.sleep(0.5)
        finally:
            for task in opening:
                task.cancel()

    async def _open_new_mail(self, http: httpx.AsyncClient, titles: dict[str, Expected], opening: set[asyncio.Task[None]]) -> None:
        answer = (await http.get(f"{self.catcher}/mails.json", params={"after": self._mail_seen})).raise_for_status().json()
        if answer["refused"] > self._refused:
            self.say(f"   [yellow]The mail server refused {answer['refused'] - self._refused} delivery(ies);"
                     " the notifier keeps them and tries again.[/]")
            self._refused = answer["refused"]
        for mail in answer["mails"]:
            self._mail_seen = max(self._mail_seen, mail["number"])
            if (link := _LINK.search(mail["text"])) is None:
                continue  # a completion or download mail: nothing to sign
            entry = next((e for t, e in titles.items() if t in mail["subject"] or t in mail["text"]), None)
            task = asyncio.create_task(self._open(http, mail["to"], link.group(0), entry))
            opening.add(task)
            task.add_done_callback(opening.discard)

    async def _open(self, http: httpx.AsyncClient, to: str, link: str, entry: Expected | None) -> None:
        """Open a mailed link as its reader would, and sign (or decline, when the story says so). A page that does not
        load (the connection dropped: a kept-alive one the server closed just as it was reused) is loaded again, as
        its reader would; what still fails is said, never lost in a task nobody awaits."""
        who, what = to.split("@")[0], entry.label if entry else "a document"
        for attempt in range(1, _TRIES + 1):
            try:
                return await self._open_once(http, who, what, link, entry, to)
            except httpx.TransportError as exc:
                if attempt == _TRIES:
                    self.say(f"   {who:<15} {what:<18} [red]the link does not load ({exc!r}); giving up[/]")
                    raise
                self.say(f"   {who:<15} {what:<18} [yellow]the page did not load ({exc!r}); trying again[/]")
                await asyncio.sleep(0.5 * attempt)

    async def _open_once(self, http: httpx.AsyncClient, who: str, what: str, link: str, entry: Expected | None, to: str) -> None:
        declines = entry is not None and entry.decline_by is not None and to.startswith(entry.decline_by + "@")
        async with self._signing:
            self.say(f"   {who:<15} {what:<18} {link}")
            await asyncio.sleep(self.pace)  # time to click it yourself instead
            page = await http.get(link)
            if page.status_code != 200 or (csrf := _CSRF.search(page.text)) is None:
                self.say(f"   {who:<15} {what:<18} [yellow]the link answers {page.status_code}: used already (by you?)[/]")
                return
            if declines:
                done = await http.post(f"{link}/decline", data={"csrf": csrf.group(1), "reason": DECLINE_REASON})
                verb = f"[yellow]declines[/]: {DECLINE_REASON}"
            else:
                done = await http.post(f"{link}/sign", data={"csrf": csrf.group(1)})
                verb = "[green]signs[/]"
        self.say(f"   {who:<15} {what:<18} {verb}" + ("" if done.status_code == 200 else f" [red](answer {done.status_code})[/]"))

    async def _follow(self, client: SourceClient, entry: Expected) -> None:
        while True:
            entry.last = await client.next_outcome(entry.document.external_ref)
            if entry.last.status in FINAL:
                break
        if entry.last.pdf:
            self.saved_in.mkdir(parents=True, exist_ok=True)
            entry.saved = self.saved_in / entry.document.filename.replace(".pdf", "-signed.pdf")
            entry.saved.write_bytes(base64.b64decode(entry.last.pdf))
        style = "green" if entry.last.status == entry.outcome else "red"
        self.say(f"   [{style}]{entry.last.status}[/]: {entry.document.title} (outcome to {entry.source})")

    def _summary(self) -> None:
        table = Table("document", "outcome", "signed by", "at", "signed PDF", title="What came back to the sources")
        zone = ZoneInfo("Europe/Brussels")
        for entry in self.expected:
            outcome = entry.last
            signers = "; ".join(
                s.signer.name + (f" wnd. {s.on_behalf_of.title or s.on_behalf_of.name}" if s.on_behalf_of else "")
                for s in (outcome.signatures if outcome else []) if s.action == "sign"
            ) or (outcome.reason or "" if outcome else "")
            when = f"{outcome.occurred_at.astimezone(zone):%H:%M:%S}" if outcome else ""
            status = outcome.status if outcome else "no answer"
            style = "green" if status == entry.outcome else "red"
            table.add_row(entry.label, f"[{style}]{status}[/]", signers, when, entry.saved.name if entry.saved else "")
        self.console.print(table)
        self.say(f"The signed PDFs are in {_shown(self.saved_in)}/ (check one: paraaf verify FILE).")
        self.say(
            f"\nWhere to look: the mails, in the mail catcher {self.catcher}/ ; the portal, {self.public_url}/p/"
            f" (sign in as ann.aerts: her sign-in link arrives in the mail catcher); the operator pages,"
            f" {self.public_url}/p/ops/documents (sign in as iris.ilegems)."
        )


def _shown(path: Path | None) -> str:
    """The path as short as the reader can use it: relative to where she typed the command, when it is below it."""
    if path is None:
        return ""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def run_paraaf(*args: str) -> str:
    """`paraaf ARGS` as the operator types it (its own process, with this shell's environment)."""
    done = subprocess.run([sys.executable, "-m", "services", *args], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip()
