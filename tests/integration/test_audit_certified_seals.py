"""Checkpoints sealed with the organisation's key: `paraaf setup` has the
organisation's CA certify the audit's sealing key (the CA's private key stays
out of the audit's hands), each checkpoint carries that certificate, and
verify accepts a checkpoint only when its certificate chains to the
organisation's root — and its timestamp token's own signature holds."""

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from asn1crypto import cms
from cryptography import x509
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper

from services.admin.sealing import issue_sealing_certificate
from services.audit import handlers
from services.audit.config import AuditSettings
from services.audit.seal import Checkpoint, Trust, check_checkpoint, load_sealing_key, new_sealing_key, public_key_of, seal
from services.audit.sealing import sealing_certificate, sealing_key
from services.audit.store import PostgresAuditStore
from services.signer.ca import new_authority
from shared.db import connect_pool
from tests.support.audit_log import record
from tests.support.commands import paraaf
from tests.support.tsa import TimestampAuthority


def certified(authority, key, *, organisation: str = "Stad Brugge", now: datetime | None = None) -> str:
    return issue_sealing_certificate(
        root_cert_pem=authority.cert_pem.decode(),
        root_key=authority.key,
        organisation=organisation,
        public_key=key.public_key(),
        now=now or datetime.now(UTC),
    )


def root_of(authority) -> tuple[x509.Certificate, ...]:
    return (x509.load_pem_x509_certificate(authority.cert_pem),)


async def test_setup_certifies_the_sealing_key_and_verify_checks_the_certificate_against_the_organisations_root(
    shell: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    """Without the signer's secret `paraaf setup` certifies nothing and makes no secret of its own; with it, the
    audit's secrets hold its key's certificate from the organisation's CA (the root `paraaf ca export` prints) and no
    other private key; a checkpoint sealed then carries it and verify says intact; against another organisation's
    root, verify names the checkpoint whose certificate is not from that CA."""
    without = paraaf({**shell, "PARAAF_DATA_DIR": str(tmp_path)}, "setup")
    assert without.returncode == 0 and "was not certified: PARAAF_KEY_SECRET is not set" in without.stderr, without.stderr
    assert not (tmp_path / "signer-key-secret").exists()
    operator = {**shell, "PARAAF_KEY_SECRET": "a-long-random-secret-for-this-test", "PARAAF_DATA_DIR": str(tmp_path)}
    done = paraaf(operator, "setup")
    assert done.returncode == 0 and "certified by the CA of org" in done.stderr, done.stdout + done.stderr
    secrets = json.loads((Path(shell["PARAAF_SECRETS_DIR"]) / "audit.json").read_text())
    exported = paraaf(operator, "ca", "export")
    assert secrets["seal_root"] == exported.stdout
    assert [name for name, value in secrets.items() if "PRIVATE KEY" in str(value)] == ["seal_key"]
    again = paraaf(operator, "setup")
    assert (
        "already certified" in again.stderr
        and json.loads((Path(shell["PARAAF_SECRETS_DIR"]) / "audit.json").read_text()) == secrets
    )

    settings = AuditSettings(secrets_dir=shell["PARAAF_SECRETS_DIR"])
    key = sealing_key(settings)
    admin = await connect_pool(database_url)
    try:
        await record(admin, 3)
        async with admin.acquire() as conn, conn.transaction():
            checkpoint = await handlers.seal_head(
                PostgresAuditStore(conn), key, datetime.now(UTC), None, sealing_certificate(settings, key)
            )
    finally:
        await admin.close()
    assert checkpoint is not None and checkpoint.certificate == secrets["seal_cert"]
    intact = paraaf(operator, "audit", "verify")
    assert intact.returncode == 0 and "intact: 3 entries" in intact.stdout, intact.stdout + intact.stderr
    (tmp_path / "other-root.pem").write_bytes(new_authority("Another town").cert_pem)
    foreign = paraaf(operator, "audit", "verify", "--trust", str(tmp_path / "other-root.pem"))
    assert foreign.returncode == 1 and "BROKEN at entry 3" in foreign.stdout
    assert "certificate not issued by the organisation's CA" in foreign.stdout


async def test_only_a_key_the_organisations_ca_certified_seals(audit_pool: asyncpg.Pool) -> None:
    """A checkpoint certified by the organisation's CA verifies, also from a newer sealing key than the one on file;
    one a forger certified with a CA of his own, one whose certificate names another key, and one sealed outside
    its certificate's validity are refused, each with its reason."""
    now = datetime.now(UTC)  # when the test runs, not when it was collected: certificates are issued now
    organisation, forger = new_authority("Stad Brugge"), new_authority("Stad Brugge")  # same name, other key
    on_file, newer, forged = (load_sealing_key(new_sealing_key()) for _ in range(3))
    trust = Trust(roots=root_of(organisation), key=public_key_of(on_file))
    await record(audit_pool, 2)
    async with audit_pool.acquire() as conn, conn.transaction():
        seq, head = await PostgresAuditStore(conn).head()
    good = await seal(newer, seq, head, now, certificate=certified(organisation, newer))
    assert await check_checkpoint(good, trust) is None
    by_forger = await seal(forged, seq, head, now, certificate=certified(forger, forged))
    assert "certificate not issued by the organisation's CA" in await check_checkpoint(by_forger, trust)
    wrong_key = await seal(forged, seq, head, now, certificate=certified(organisation, newer))
    assert "certificate for another key" in await check_checkpoint(wrong_key, trust)
    too_late = await seal(newer, seq, head, now + timedelta(days=365 * 4), certificate=certified(organisation, newer))
    assert "outside the validity of its certificate" in await check_checkpoint(too_late, trust)
    async with audit_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        assert await handlers.verify(PostgresAuditStore(conn), [good], trust=trust) == (2, None)
        _, problem = await handlers.verify(PostgresAuditStore(conn), [good, by_forger], trust=trust)
    assert problem is not None and problem.seq == 2 and "not issued by the organisation's CA" in problem.reason


async def test_a_checkpoint_sealed_before_certification_counts_when_signed_by_the_key_on_file() -> None:
    """An older checkpoint without a certificate verifies against the sealing key on file; one without a
    certificate by any other key is refused; exported before, it still reads back."""
    now = datetime.now(UTC)  # when the test runs, not when it was collected: certificates are issued now
    organisation = new_authority("Stad Brugge")
    on_file, other = load_sealing_key(new_sealing_key()), load_sealing_key(new_sealing_key())
    old = await seal(on_file, 4, "a" * 64, now)
    exported_before = {k: v for k, v in json.loads(old.to_json()).items() if k != "certificate"}  # no such field then
    assert Checkpoint.from_json(json.dumps(exported_before)) == old
    trust = Trust(roots=root_of(organisation), key=public_key_of(on_file))
    assert await check_checkpoint(old, trust) is None
    assert "not the audit sealing key" in await check_checkpoint(await seal(other, 4, "a" * 64, now), trust)


async def test_a_timestamp_token_counts_only_with_its_own_signature_intact() -> None:
    """A TSA's token verifies against that TSA's root; a token whose signature bytes were altered is refused, and
    so is one from an authority other than the trusted ones."""
    now = datetime.now(UTC)  # when the test runs, not when it was collected: certificates are issued now
    tsa, key = TimestampAuthority(), load_sealing_key(new_sealing_key())
    await tsa.start()
    try:
        stamped = await seal(key, 1, "b" * 64, now, HTTPTimeStamper(tsa.url))
    finally:
        await tsa.stop()
    tsa_root = x509.load_pem_x509_certificate(tsa.root_pem)
    assert await check_checkpoint(stamped, Trust(key=public_key_of(key), tsa_roots=(tsa_root,))) is None
    altered = replace(stamped, timestamp_token=_flip_signature(stamped.timestamp_token))
    assert "timestamp token whose signature does not match" in await check_checkpoint(altered, Trust(key=public_key_of(key)))
    elsewhere = x509.load_pem_x509_certificate(TimestampAuthority().root_pem)
    assert "not among the trusted ones" in await check_checkpoint(stamped, Trust(key=public_key_of(key), tsa_roots=(elsewhere,)))


def _flip_signature(token: str | None) -> str:
    """The token with one bit of its signer's signature changed: what a forged or damaged token looks like."""
    info = cms.ContentInfo.load(base64.b64decode(token or ""))
    signer = info["content"]["signer_infos"][0]
    signature = bytearray(signer["signature"].native)
    signature[len(signature) // 2] ^= 0x01
    signer["signature"] = bytes(signature)
    return base64.b64encode(info.dump(force=True)).decode()
