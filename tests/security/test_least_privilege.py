"""Least privilege: each service's database role reaches only its own schema,
the audit role cannot rewrite the log, no service runs as a superuser or with
a placeholder key secret, signing keys are encrypted under a slow-derived key,
and only the signer's public port is published by the compose file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import yaml

from services.supervisor import child_environment
from shared.credentials import read_identity
from tests.security.conftest import attempted
from tests.support.system import ROOT, System

pytestmark = pytest.mark.e2e

# (service, statement it must not be able to run)
FORBIDDEN_SQL = [
    ("router", "SELECT token_hash FROM signer.tokens"),
    ("router", "SELECT key_pem FROM signer.certificates"),
    ("intake", "SELECT key_pem FROM signer.authorities"),
    ("notifier", "SELECT key_hash FROM access.api_keys"),
    ("notifier", "SELECT * FROM router.people"),  # only how each person wants mail (org, id, mails)
    ("notifier", "SELECT email FROM router.people"),
    ("audit", "UPDATE audit.log SET payload = '{}' WHERE seq = 1"),
    ("audit", "DELETE FROM audit.log"),
    ("audit", "ALTER TABLE audit.log DISABLE TRIGGER log_append_only"),
    ("audit", "TRUNCATE audit.log"),
    # Its sealed checkpoints: added, never changed or removed by the service itself.
    ("audit", "UPDATE audit.checkpoints SET head_hash = 'x'"),
    ("audit", "DELETE FROM audit.checkpoints"),
    ("audit", "TRUNCATE audit.checkpoints"),
    ("signer", "UPDATE blobs.blob SET data = 'x'"),
    ("signer", "DELETE FROM blobs.versions"),
    ("intake", "SELECT * FROM router.instances"),
    # The portal reads the router's documents and intake's refusals; it changes them only by messages.
    ("signer", "UPDATE router.instances SET status = 'withdrawn'"),
    ("signer", "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source) VALUES (gen_random_uuid(), 'default', 'x', now(), now() + interval '1 day', 'api')"),
    ("signer", "UPDATE router.people SET email = 'x'"),
    ("signer", "DELETE FROM intake.rejections"),
    ("signer", "SELECT * FROM intake.sources"),
    ("signer", "SELECT secret FROM intake.webhooks"),  # the webhook signing secrets are intake's alone
    # Its operator pages read the audit log; they cannot add to it, change it, or read its checkpoints' store.
    ("signer", "UPDATE audit.log SET payload = '{}' WHERE seq = 1"),
    ("signer", "INSERT INTO audit.head (id, seq, hash) VALUES (2, 0, 'x')"),
    ("signer", "SELECT * FROM audit.inbox"),
]


@pytest.mark.parametrize(("service", "statement"), FORBIDDEN_SQL, ids=[f"{s}: {q[:40]}" for s, q in FORBIDDEN_SQL])
async def test_a_service_role_is_refused_what_is_not_its_own(city: System, service: str, statement: str) -> None:
    """Connected as the service's own role, the statement is refused by PostgreSQL."""
    url = read_identity(city.settings, service, needs=("database_url",)).database_url
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.PostgresError)) as refused:
                await conn.execute(statement)
    finally:
        await conn.close()
    attempted(f"as database role of {service}: {statement}", str(refused.value))
    assert "permission denied" in str(refused.value) or "must be owner" in str(refused.value)


async def test_every_connection_of_the_running_services_is_their_own_role(city: System) -> None:
    """pg_stat_activity on the city's database: no service is connected as a superuser."""
    database = city.env["PARAAF_DATABASE_URL"].rsplit("/", 1)[-1]
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        roles = await conn.fetch(
            "SELECT DISTINCT usename, (SELECT rolsuper FROM pg_roles WHERE rolname = usename) AS super"
            " FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    prefix = city.settings.db_role_prefix
    assert {r["usename"] for r in roles} <= {f"{prefix}_{s}" for s in ("intake", "router", "signer", "notifier", "audit")}
    assert not any(r["super"] for r in roles)
    assert len(roles) == 5


def _start(city: System, service: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"], env={**city.env, **env}, capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def _why(result: subprocess.CompletedProcess[str]) -> str:
    """The service's last words: the reason of its `cannot start` log line."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return f"exit {result.returncode}: " + next((line["reason"] for line in lines if line.get("event") == "cannot start"), "?")


def test_a_service_refuses_to_run_as_a_superuser(city: System) -> None:
    """The router given the postgres superuser's URL stops at once and says why."""
    result = _start(city, "router", PARAAF_ROUTER_DATABASE_URL=city.env["PARAAF_DATABASE_URL"])
    attempted("start the router as the database superuser", _why(result))
    assert result.returncode == 2 and "never connects as a database superuser" in result.stdout


def test_a_service_refuses_to_run_as_guest(city: System) -> None:
    """The notifier given RabbitMQ's guest stops at once and says it must be its own user."""
    result = _start(city, "notifier", PARAAF_NOTIFIER_AMQP_URL=city.amqp_url)
    attempted("start the notifier as the broker's guest", _why(result))
    assert result.returncode == 2 and "must connect to RabbitMQ as" in result.stdout


@pytest.mark.parametrize("secret", ["change-me-in-production", "short"])
def test_the_signer_refuses_a_placeholder_or_short_key_secret(city: System, secret: str) -> None:
    """PARAAF_KEY_SECRET=change-me-in-production (compose's old default) or a short one: the signer does not start."""
    result = _start(city, "signer", PARAAF_KEY_SECRET=secret)
    attempted(f"start the signer with PARAAF_KEY_SECRET={secret}", _why(result))
    assert result.returncode == 2 and "placeholder or shorter than 16 characters" in result.stdout


async def test_signing_keys_rest_encrypted_under_a_scrypt_derived_key(city: System) -> None:
    """Every stored private key is AES-GCM ciphertext, the key-encryption key comes from scrypt with n >= 2^16."""
    conn = await asyncpg.connect(city.env["PARAAF_DATABASE_URL"])
    try:
        keys = [r["key_pem"] for r in await conn.fetch("SELECT key_pem FROM signer.certificates UNION ALL SELECT key_pem FROM signer.authorities")]
        n = await conn.fetchval("SELECT n FROM signer.key_encryption")
    finally:
        await conn.close()
    assert keys and all(k.startswith("aesgcm:") and "PRIVATE KEY" not in k for k in keys)
    assert n >= 2**16


def test_the_key_secret_and_other_services_credentials_reach_only_their_own_process() -> None:
    """`paraaf run all` gives PARAAF_KEY_SECRET and the token's PIN to the signer alone, each service only its own
    credentials, and no service the administrator's passwords."""
    environment = {
        "PARAAF_KEY_SECRET": "s" * 32,
        "PARAAF_PKCS11_PIN": "4321",
        "PARAAF_ROUTER_AMQP_URL": "amqp://paraaf.router:pw@h/",
        "PARAAF_SIGNER_DATABASE_URL": "postgresql://paraaf_signer:pw@h/paraaf",
        "PARAAF_NOTIFIER_SIGNER_KEY": "paraaf_x",
        "PARAAF_SIGNER_INTERNAL_URL": "http://127.0.0.1:8083",
        "PARAAF_AMQP_URL": "amqp://admin:secret@rabbit:5672/city",
        "PARAAF_DATABASE_URL": "postgresql://postgres:secret@db:5432/paraaf",
        "PATH": os.environ.get("PATH", ""),
    }
    router, signer, notifier = (child_environment(s, environment) for s in ("router", "signer", "notifier"))
    assert "PARAAF_KEY_SECRET" not in router and signer["PARAAF_KEY_SECRET"] == "s" * 32
    assert "PARAAF_PKCS11_PIN" not in router and "PARAAF_PKCS11_PIN" not in notifier and signer["PARAAF_PKCS11_PIN"] == "4321"
    assert "PARAAF_SIGNER_DATABASE_URL" not in router and "PARAAF_ROUTER_AMQP_URL" in router
    assert "PARAAF_NOTIFIER_SIGNER_KEY" not in signer and "PARAAF_NOTIFIER_SIGNER_KEY" in notifier
    assert notifier["PARAAF_SIGNER_INTERNAL_URL"] == "http://127.0.0.1:8083"
    for child in (router, signer, notifier):
        assert child["PARAAF_AMQP_URL"] == "amqp://rabbit:5672/city"
        assert child["PARAAF_DATABASE_URL"] == "postgresql://db:5432/paraaf"


def test_the_compose_file_publishes_only_the_signer_and_gives_the_key_secret_to_it_alone() -> None:
    """docker-compose.yml: every port but the signer's is bound to the host's loopback; of the running services only the
    signer has PARAAF_KEY_SECRET. The one-shot `setup` (the administrator's own, which runs once and exits) has it too:
    it has the CA certify the audit's sealing key."""
    compose = yaml.safe_load((Path(ROOT) / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert name == "signer" or port.startswith("127.0.0.1:"), (name, port)
        assert ("PARAAF_KEY_SECRET" in (service.get("environment") or {})) == (name in ("signer", "setup")), name
    assert compose["services"]["setup"]["restart"] == "no" and compose["services"]["setup"]["command"] == ["paraaf", "setup"]
