"""Many cities on one installation: three organisations, each made with `paraaf org create`, with its own
directory, flow, source, certificate authority and portal host, all on the same five services, broker and
database — and nothing of one reaches another: not a certificate, a mail, a link, a document, a figure or a
trail. The tests share one running installation; each finds its own documents by their references."""

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.conftest import Infra, fresh_database, fresh_vhost
from tests.support.forwarder import Forwarder
from tests.support.pdfs import make_pdf
from tests.support.portal import sign_in_by_mail
from tests.support.smtp import SmtpServer
from tests.support.system import Outcomes, System, follow_link, submission
from tests.support.towns import Town, portal_in_front_of, town_directory, town_flows
from tests.support.validate import pyhanko_validate

pytestmark = pytest.mark.e2e
TOWNS = (("aalst", "Stad Aalst"), ("gent", "Stad Gent"), ("ninove", "Stad Ninove"))
DOCUMENTS = {"aalst": 2, "gent": 3, "ninove": 4}  # a different number each: whose figures are whose shows


@pytest.fixture(scope="module")
async def towns(infra: Infra, secrets_dir: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[System, dict[str, Town]]]:
    """One installation, set up as a provider does: `paraaf setup`, then per town `paraaf org create` (with its own
    portal host), `paraaf directory import --org`, `paraaf flows load --org`, `paraaf sources add --org`."""
    folder = tmp_path_factory.mktemp("towns")
    smtp = SmtpServer()
    await smtp.start()
    try:
        async with fresh_database(infra) as database_url, fresh_vhost(infra) as amqp_url:
            system = System(
                name="orgs", database_url=database_url, amqp_url=amqp_url, smtp=smtp, secrets_dir=secrets_dir,
                extra_env={"PARAAF_DB_POOL_SIZE": "2"},  # a machine shared with other test runs: PostgreSQL has 100 slots
            )
            system.smtp = smtp  # type: ignore[attr-defined]
            taken = set(system.ports.values())
            towns = {key: Town(key, name, portal_in_front_of(system.ports["signer"], taken)) for key, name in TOWNS}
            await system.set_up()
            flows = town_flows(folder)
            for town in towns.values():
                await town.portal.start()
                system.cli("org", "create", town.key, "--name", town.name, "--portal-url", town.url)
                system.cli("directory", "import", "--org", town.key, str(town_directory(folder, town)))
                system.cli("flows", "load", "--org", town.key, str(flows))
                system.add_source(town.source, "--org", town.key, "--any-submitter")
            try:
                await system.start()
                yield system, towns
            finally:
                codes = system.stop()
                for town in towns.values():
                    await town.portal.stop()
            assert all(code == 0 for code in codes.values()), f"a service did not stop cleanly: {codes}"
    finally:
        await smtp.stop()


def _title(town: Town, n: int) -> str:
    return f"Besluit {town.name} {n}"


async def _submit_and_sign(system: System, smtp: SmtpServer, town: Town, count: int) -> list[dict]:
    """The town's source submits ``count`` documents; its mayor signs each by the mailed link; the completed outcomes."""
    async with Outcomes(system.amqp_url, f"{town.source}.*") as outcomes:
        await system.publish_many(
            [submission(make_pdf(), source=town.source, external_ref=f"{town.key}-{n}", title=_title(town, n),
                        flow="besluit", submitted_by="griffier") for n in range(count)],
            source=town.source,
        )
        async with httpx.AsyncClient() as mayor:
            for n in range(count):
                mail = (await smtp.wait_for_mail(town.mayor, about=_title(town, n), timeout=60))[0]
                assert urlsplit(mail.signing_link).netloc == urlsplit(town.url).netloc, "the link goes to the town's own portal"
                assert (await follow_link(mayor, mail.signing_link)).status_code == 200
        return [await outcomes.wait(f"{town.source}.completed", f"{town.key}-{n}", timeout=90) for n in range(count)]


async def _root(town: Town) -> bytes:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{town.url}/ca.pem")
        answer.raise_for_status()
        return answer.content


async def test_three_towns_sign_at_once_and_each_pdf_chains_to_its_own_town_ca_only(towns: tuple[System, dict[str, Town]]) -> None:
    """Documents flow in all three towns at once; every signed PDF is trusted under its own town's root and under no other's;
    every mail went to a person of the town whose document it was."""
    system, by_key = towns
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
    completed = await asyncio.gather(*(_submit_and_sign(system, smtp, t, DOCUMENTS[k]) for k, t in by_key.items()))
    roots = {key: await _root(town) for key, town in by_key.items()}
    assert len(set(roots.values())) == 3, "each town has a root of its own"
    for (key, town), outcomes in zip(by_key.items(), completed, strict=True):
        assert len(outcomes) == DOCUMENTS[key]
        for outcome in outcomes:
            pdf = base64.b64decode(outcome["pdf"])
            for other, root in roots.items():
                reports = await pyhanko_validate(pdf, root)
                assert [r.signer for r in reports] == [f"Burgemeester {town.name}"]
                assert all(r.intact and r.valid for r in reports)
                assert all(r.trusted for r in reports) == (other == key), (key, other, reports)
    for key, town in by_key.items():
        titles = {m.subject for m in smtp.received if any(t.endswith(f"@{key}.example") for t in m.to)}
        others = [t for k, t in by_key.items() if k != key]
        assert not [s for s in titles if any(o.name in s for o in others)], f"a mail of another town reached {key}: {titles}"
        for mail in smtp.received:
            if town.name in mail.subject:
                assert all(t.endswith(f"@{key}.example") for t in mail.to), (mail.subject, mail.to)
                assert f"127.0.0.1:{town.portal.port}" in mail.text or "/s/" not in mail.text


async def test_a_source_submitting_for_another_town_is_refused_with_the_reason(towns: tuple[System, dict[str, Town]]) -> None:
    """Aalst's source naming org `gent` gets a rejected outcome that says it submits for aalst; Gent gets no document."""
    system, by_key = towns
    aalst = by_key["aalst"]
    async with Outcomes(system.amqp_url, f"{aalst.source}.*") as outcomes:
        await system.publish(
            submission(make_pdf(), source=aalst.source, external_ref="aalst-for-gent", title="Besluit voor Gent", org="gent",
                       flow="besluit", submitted_by="griffier"),
            routing_key=f"submit.{aalst.source}", source=aalst.source,
        )
        rejected = await outcomes.wait(f"{aalst.source}.rejected", "aalst-for-gent")
    assert rejected["code"] == "forbidden_org"
    assert "submits for organisation `aalst`, not `gent`" in rejected["reason"]
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.documents WHERE external_ref = 'aalst-for-gent'") == 0
    finally:
        await conn.close()


async def test_a_signing_link_of_one_town_does_not_open_on_another_towns_portal(towns: tuple[System, dict[str, Town]]) -> None:
    """The mayor of Ninove's link, taken to Gent's host (or the installation's own), is answered as an unknown link;
    on Ninove's own host it opens."""
    system, by_key = towns
    ninove, gent = by_key["ninove"], by_key["gent"]
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
    await system.publish(
        submission(make_pdf(), source=ninove.source, external_ref="ninove-link", title="Besluit Ninove link", flow="besluit",
                   submitted_by="griffier"),
        routing_key=f"submit.{ninove.source}", source=ninove.source,
    )
    link = (await smtp.wait_for_mail(ninove.mayor, about="Besluit Ninove link", timeout=60))[0].signing_link
    path = urlsplit(link).path
    async with httpx.AsyncClient() as client:
        assert (await client.get(gent.url + path)).status_code == 404
        assert (await client.get(system.public_url + path)).status_code == 404
        assert (await client.post(gent.url + path + "/sign", data={"csrf": "x"})).status_code in (403, 404)
        opened = await client.get(link)
        assert opened.status_code == 200 and "Besluit Ninove link" in opened.text


async def test_an_operator_sees_her_own_towns_documents_figures_and_trails_only(towns: tuple[System, dict[str, Town]]) -> None:
    """Aalst's operator, signed in on Aalst's portal (her sign-in link goes there), lists only Aalst's documents, reads
    Aalst's figures, gets no trail of a Gent document, and her session is nobody's on Gent's host."""
    system, by_key = towns
    aalst, gent = by_key["aalst"], by_key["gent"]
    smtp: SmtpServer = system.smtp  # type: ignore[attr-defined]
    conn = await asyncpg.connect(system.env["PARAAF_DATABASE_URL"])
    try:
        counts = dict(await conn.fetch("SELECT org, count(*) FROM router.instances GROUP BY org"))
        gent_document = await conn.fetchval("SELECT document_id FROM router.instances WHERE org = 'gent' LIMIT 1")
    finally:
        await conn.close()
    assert counts.get("aalst") and counts.get("gent") and gent_document is not None, "run after documents went through"
    operator = await sign_in_by_mail(aalst.url, smtp, aalst.operator)
    try:
        listed = await operator.get("/p/ops/documents")
        assert listed.status_code == 200 and "Stad Aalst" in listed.text
        assert "Stad Gent" not in listed.text and "Stad Ninove" not in listed.text
        figures = (await operator.get("/p/ops/figures.json")).json()
        assert figures["org"] == "aalst" and figures["totals"]["documents"] == counts["aalst"]
        assert (await operator.get(f"/p/ops/documents/{gent_document}")).status_code == 404
        cookies = dict(operator.cookies)
    finally:
        await operator.aclose()
    async with httpx.AsyncClient(base_url=gent.url, cookies=cookies) as elsewhere:
        assert (await elsewhere.get("/p/ops/figures.json")).status_code == 401
        page = await elsewhere.get("/p/ops/documents")
        assert page.status_code == 303 and "/p/sign-in" in page.headers["location"]
        assert "Stad Gent" not in page.text


async def test_each_portal_shows_its_towns_name(towns: tuple[System, dict[str, Town]]) -> None:
    """The sign-in page on each town's host carries that town's name, and no other's."""
    _, by_key = towns
    async with httpx.AsyncClient() as client:
        for town in by_key.values():
            page = (await client.get(f"{town.url}/p/sign-in")).text
            assert town.name in page
            assert not [t.name for t in by_key.values() if t is not town and t.name in page]


def test_towns_helpers_write_what_the_importer_reads(tmp_path: Path) -> None:
    """The town's directory and flow are accepted by the same reader `paraaf directory import` and `flows load` use."""
    from services.router.importer import read_directory, read_flows, read_workbook

    town = Town("aalst", "Stad Aalst", Forwarder("127.0.0.1", 1))
    directory = read_directory(read_workbook(town_directory(tmp_path, town)))
    assert [f.key for f in read_flows(town_flows(tmp_path), directory)] == ["besluit"]
