"""`paraaf org create` and `paraaf org list` against a real database, and every `--org` refusing a key no
`paraaf org create` made."""

from pathlib import Path

import asyncpg
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.support.commands import paraaf

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo"


async def test_an_org_is_created_listed_and_gets_a_ca_in_its_own_name(
    database_url: str, shell: dict[str, str], tmp_path: Path
) -> None:
    """`paraaf org create aalst --name "Stad Aalst"` registers it with its portal and makes a root CA whose O= is its name."""
    env = {**shell, "PARAAF_KEY_SECRET": "a-long-enough-secret-for-this-test-only", "PARAAF_DATA_DIR": str(tmp_path)}
    made = paraaf(env, "org", "create", "aalst", "--name", "Stad Aalst", "--portal-url", "https://aalst.paraaf.example")
    assert made.returncode == 0, made.stderr
    assert "Organisation `aalst` (Stad Aalst) created" in made.stderr
    listed = paraaf(env, "org", "list").stdout
    assert "aalst" in listed and "Stad Aalst" in listed and "https://aalst.paraaf.example" in listed
    assert "default" in listed  # the installation's own, registered by setup
    conn = await asyncpg.connect(database_url)
    try:
        pem = await conn.fetchval("SELECT cert_pem FROM signer.authorities WHERE org = 'aalst'")
    finally:
        await conn.close()
    root = x509.load_pem_x509_certificate(pem.encode())
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Stad Aalst"
    again = paraaf(env, "org", "create", "aalst", "--name", "Stad Aalst")
    assert again.returncode == 0 and "updated" in again.stderr


async def test_bad_keys_and_a_portal_taken_by_another_org_are_refused(shell: dict[str, str]) -> None:
    """A key with capitals or spaces, a portal URL with a path, and a second org on the same host are each refused with why."""
    bad_key = paraaf(shell, "org", "create", "Stad Aalst", "--name", "Stad Aalst")
    assert bad_key.returncode == 1 and "is not an organisation key" in bad_key.stderr
    bad_url = paraaf(shell, "org", "create", "gent", "--name", "Stad Gent", "--portal-url", "https://x.example/gent")
    assert bad_url.returncode == 1 and "no path" in bad_url.stderr
    assert paraaf(shell, "org", "create", "gent", "--name", "Stad Gent", "--portal-url", "https://gent.example").returncode == 0
    taken = paraaf(shell, "org", "create", "ninove", "--name", "Ninove", "--portal-url", "https://gent.example")
    assert taken.returncode == 1 and "is organisation `gent`'s already" in taken.stderr


async def test_every_org_option_refuses_an_org_nobody_created(database_url: str, shell: dict[str, str]) -> None:
    """directory import, flows load, sources add and keys create with `--org nowhere` fail, change nothing, and say how to create it."""
    commands = [
        ("directory", "import", "--org", "nowhere", str(DEMO / "city.xlsx")),
        ("flows", "load", "--org", "nowhere", str(DEMO / "flows")),
        ("sources", "add", "loket", "--org", "nowhere", "--any-submitter"),
        ("keys", "create", "--name", "script", "--scopes", "operate", "--org", "nowhere"),
    ]
    for command in commands:
        result = paraaf(shell, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        said = " ".join((result.stdout + result.stderr).split())
        assert "no organisation `nowhere` (known: default)" in said, (command, said)
        assert "paraaf org create nowhere" in said
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM router.people WHERE org = 'nowhere'") == 0
        assert await conn.fetchval("SELECT count(*) FROM intake.sources") == 0
        assert await conn.fetchval("SELECT count(*) FROM access.api_keys WHERE org = 'nowhere'") == 0
    finally:
        await conn.close()
