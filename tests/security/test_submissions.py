"""Sources are authorised: a registered system submits only for its own org, with
its own flows, for its own submitters, and sends its own steps only when allowed."""

import asyncpg
import pytest

from tests.security.conftest import State, attempted, settle
from tests.support.pdfs import make_pdf
from tests.support.system import Outcomes, System, submission

pytestmark = pytest.mark.e2e

# (what the attacker sends, as which source, the code, words of the reason)
FORBIDDEN = [
    ("notula submits for org `othercity`", "notula", {"org": "othercity"}, "forbidden_org",
     "submits for organisation `default`, not `othercity`"),
    ("omgeving uses flow `collegebesluit` (it may use only `omgevingsvergunning`)", "omgeving", {"flow": "collegebesluit"},
     "forbidden_flow", "may not use flow `collegebesluit`; its flows are `omgevingsvergunning`"),
    ("omgeving submits on behalf of the mayor (it may only for elen.elaut)", "omgeving",
     {"flow": "omgevingsvergunning", "submitted_by": "bart.baert"}, "forbidden_submitter", "may not submit on behalf of `bart.baert`"),
    ("omgeving sends its own steps, skipping the permit flow's approval", "omgeving",
     {"flow": None, "steps": [{"action": "sign", "signers": ["role:burgemeester"]}]}, "forbidden_steps",
     "may not send its own `steps`"),
]


@pytest.mark.parametrize(("attack", "source", "changes", "code", "words"), FORBIDDEN, ids=[f[3] for f in FORBIDDEN])
async def test_a_source_is_refused_what_it_was_not_given(
    city: System, attack: str, source: str, changes: dict, code: str, words: str
) -> None:
    """The submission gets a rejected outcome with the code and a sentence; no document is made and nobody is mailed."""
    before = await State.of(city)
    body = submission(make_pdf(), source=source, external_ref=f"FORBIDDEN-{code}", **changes)
    body = {k: v for k, v in body.items() if v is not None}
    async with Outcomes(city.amqp_url, f"{source}.*") as outcomes:
        await city.publish(body, f"submit.{source}", source=source)
        rejected = await outcomes.wait(f"{source}.rejected", f"FORBIDDEN-{code}")
    attempted(f"as source {source}: {attack}", f"{rejected['code']}: {rejected['reason']}")
    assert rejected["code"] == code and words in rejected["reason"], rejected
    await settle(1.0)
    after = await State.of(city)
    assert (after.documents, after.active, after.mails, after.tokens) == (before.documents, before.active, before.mails, before.tokens)
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT count(*) FROM router.instances WHERE org = 'othercity'") == 0
    finally:
        await conn.close()


async def test_a_submission_without_user_id_is_answered_and_goes_no_further(city: System) -> None:
    """A source's message that does not say who published it is refused with code missing_user_id."""
    async with Outcomes(city.amqp_url, "notula.*") as outcomes:
        await city.publish(submission(make_pdf(), external_ref="NO-USER-ID"), user_id=None)
        rejected = await outcomes.wait("notula.rejected", "NO-USER-ID")
    attempted("as source notula: a submission without the AMQP user_id", f"{rejected['code']}: {rejected['reason']}")
    assert rejected["code"] == "missing_user_id" and "user_id" in rejected["reason"]
