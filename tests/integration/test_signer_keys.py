"""Signing keys at rest on a real database: encrypted under a key derived once from
PARAAF_KEY_SECRET, opened only by that secret, bound to their row, and re-encrypted
when the secret is rotated or when a key was stored by an earlier version."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization

from services.signer import ca
from services.signer.keys import Keyring, NothingToRevoke, WeakSecret, WrongSecret, check_secret
from shared.db import connect_pool, migrate
from shared.events import PersonRef

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "signer" / "migrations"
SECRET = b"the city's long key secret"
ANN = PersonRef(id="ann.aerts", name="Ann Aerts", email="ann@x.be", title="algemeen directeur")
BART = PersonRef(id="bart.baert", name="Bart Baert", email="bart@x.be", title="burgemeester")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, max_size=2)
    await migrate(pool, "signer", [MIGRATIONS])
    yield pool
    await pool.close()


async def _keyring(pool: asyncpg.Pool, secret: bytes = SECRET) -> Keyring:
    keyring = Keyring(secret, "Stad Testegem")
    async with pool.acquire() as conn:
        await keyring.unlock(conn)
    return keyring


async def test_keys_are_stored_encrypted_and_open_again_with_the_same_secret(pool: asyncpg.Pool) -> None:
    """A certificate's key is AES-GCM ciphertext in the table; a new keyring with the same secret signs with the same key."""
    first = await _keyring(pool)
    async with pool.acquire() as conn:
        issued = await first.credentials(conn, "default", ANN)
        stored = await conn.fetchval("SELECT key_pem FROM signer.certificates")
        again = await (await _keyring(pool)).credentials(conn, "default", ANN)
    assert stored.startswith("aesgcm:") and "PRIVATE KEY" not in stored
    assert again.key_der == issued.key_der


async def test_another_secret_does_not_open_the_keys(pool: asyncpg.Pool) -> None:
    """Started with a different PARAAF_KEY_SECRET, the signer refuses to start rather than issue keys it cannot keep."""
    await _keyring(pool)
    with pytest.raises(WrongSecret):
        await _keyring(pool, b"another long enough secret")


async def test_a_key_moved_to_another_person_s_row_does_not_open(pool: asyncpg.Pool) -> None:
    """Copying Ann's encrypted key into Bart's row (someone with table access) gives nothing: the key is bound to its row."""
    keyring = await _keyring(pool)
    async with pool.acquire() as conn:
        await keyring.credentials(conn, "default", ANN)
        await keyring.credentials(conn, "default", BART)
        await conn.execute(
            "UPDATE signer.certificates SET key_pem = (SELECT key_pem FROM signer.certificates WHERE person_id = 'ann.aerts')"
            " WHERE person_id = 'bart.baert'"
        )
        with pytest.raises(InvalidTag):
            await (await _keyring(pool)).credentials(conn, "default", BART)


async def test_rotating_the_secret_re_encrypts_every_key(pool: asyncpg.Pool) -> None:
    """After `paraaf ca rotate-secret`, the new secret opens every key and the old one no longer does."""
    keyring = await _keyring(pool)
    new_secret = b"the new long key secret of the city"
    async with pool.acquire() as conn:
        before = await keyring.credentials(conn, "default", ANN)
        rotated = await keyring.rotate(conn, new_secret)
        after = await (await _keyring(pool, new_secret)).credentials(conn, "default", ANN)
    assert rotated == 2  # the CA's key and Ann's
    assert after.key_der == before.key_der
    with pytest.raises(WrongSecret):
        await _keyring(pool)


async def test_a_key_stored_by_an_earlier_version_is_encrypted_anew_at_start(pool: asyncpg.Pool) -> None:
    """A PKCS#8 key encrypted with the secret itself (PBKDF2, 2,048 iterations) is replaced by AES-GCM under the scrypt key."""
    root = ca.new_authority("Stad Testegem")
    legacy = root.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(SECRET)
    ).decode()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO signer.authorities (org, cert_pem, key_pem) VALUES ('default', $1, $2)", root.cert_pem.decode(), legacy
        )
        await _keyring(pool)
        stored = await conn.fetchval("SELECT key_pem FROM signer.authorities")
        _, key = await (await _keyring(pool)).authority(conn, "default")
    assert stored.startswith("aesgcm:")
    assert key.private_numbers() == root.key.private_numbers()


@pytest.mark.parametrize("secret", ["change-me-in-production", "secret", "fifteen-chars15"])
def test_a_placeholder_or_short_secret_is_refused(secret: str) -> None:
    """Known placeholders and anything under 16 characters are refused with a sentence saying what to set."""
    with pytest.raises(WeakSecret, match="set a long random secret"):
        check_secret(secret)


async def test_a_certificate_from_before_crls_were_published_is_replaced_at_the_next_signature(pool: asyncpg.Pool) -> None:
    """Ann's certificate names no CRL (issued before): the keyring that publishes one gives her a new key and a
    certificate naming its CRL; Bart's, already naming it, is kept."""
    before = Keyring(SECRET, "Stad Testegem")
    now = Keyring(SECRET, "Stad Testegem", "https://sign.stad.be/")
    async with pool.acquire() as conn:
        await before.unlock(conn)
        await now.unlock(conn)
        old = await before.credentials(conn, "default", ANN)
        renewed = await now.credentials(conn, "default", ANN)
        bart = await now.credentials(conn, "default", BART)
        assert await now.credentials(conn, "default", BART) == bart
        assert await now.credentials(conn, "default", ANN) == renewed
    assert ca.crl_url_of(_pem(old.cert_der)) is None
    assert ca.crl_url_of(_pem(renewed.cert_der)) == "https://sign.stad.be/ca/default.crl"
    assert renewed.key_der != old.key_der


async def test_a_revoked_certificate_is_on_the_crl_and_never_signs_again(pool: asyncpg.Pool) -> None:
    """Revoking Ann's certificate lists its serial on the CRL (signed by the root, dated then) and her next
    credentials are a new certificate; revoking again finds nothing."""
    keyring = Keyring(SECRET, "Stad Testegem", "https://sign.stad.be")
    async with pool.acquire() as conn:
        await keyring.unlock(conn)
        first = await keyring.credentials(conn, "default", ANN)
        empty = x509.load_der_x509_crl(await keyring.crl(conn, "default"))
        [revoked] = await keyring.revoke(conn, "default", "ann.aerts", title=None, reason="left", by="test", at=datetime.now(UTC))
        listed = x509.load_der_x509_crl(await keyring.crl(conn, "default"))
        second = await keyring.credentials(conn, "default", ANN)
        with pytest.raises(NothingToRevoke):
            await keyring.revoke(conn, "default", "bart.baert", title=None, reason="never signed", by="test", at=datetime.now(UTC))
        root_pem, _ = await keyring.authority(conn, "default")
    assert revoked.serial == x509.load_der_x509_certificate(first.cert_der).serial_number
    assert len(empty) == 0 and listed.get_revoked_certificate_by_serial_number(revoked.serial) is not None
    assert listed.is_signature_valid(x509.load_pem_x509_certificate(root_pem.encode()).public_key())
    assert second.cert_der != first.cert_der


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
