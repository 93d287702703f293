"""Signing keys at rest on a real database: encrypted under a key derived once from
PARAAF_KEY_SECRET, opened only by that secret, bound to their row, and re-encrypted
when the secret is rotated or when a key was stored by an earlier version.
The same tests run with PARAAF_PKCS11_MODULE (a SoftHSM2 token): then the keys
are made in the token, never leave it, and a row holds only where its key is."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from services.signer import ca, hsm
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


@pytest.fixture(params=["file keys", "SoftHSM2"])
def token(request: pytest.FixtureRequest) -> hsm.TokenConfig | None:
    """Each test with keys in the database, and again with keys in a PKCS#11 token."""
    return request.getfixturevalue("softhsm").config if request.param == "SoftHSM2" else None


async def _keyring(pool: asyncpg.Pool, secret: bytes = SECRET, token: hsm.TokenConfig | None = None) -> Keyring:
    keyring = Keyring(secret, "Stad Testegem", token=token)
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


async def test_with_a_token_the_keys_are_made_in_it_and_never_leave_it(pool: asyncpg.Pool, softhsm) -> None:  # type: ignore[no-untyped-def]
    """With PARAAF_PKCS11_MODULE, the CA's and Ann's rows hold only references; their keys in the token are sensitive and
    not extractable, Ann's certificate is for her token key and signed by the CA's token key, and a new keyring finds them."""
    first = await _keyring(pool, token=softhsm.config)
    async with pool.acquire() as conn:
        issued = await first.credentials(conn, "default", ANN)
        authority_row = await conn.fetchval("SELECT key_pem FROM signer.authorities")
        ann_row = await conn.fetchval("SELECT key_pem FROM signer.certificates")
        again = await (await _keyring(pool, token=softhsm.config)).credentials(conn, "default", ANN)
    assert authority_row.startswith("pkcs11:id=") and ann_row.startswith("pkcs11:id=")
    assert issued.key_der == b"" and again.token_key_id == issued.token_key_id == bytes.fromhex(ann_row.removeprefix("pkcs11:id="))
    session = hsm.session(softhsm.config)
    for stored in (authority_row, ann_row):
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=bytes.fromhex(stored.removeprefix("pkcs11:id=")))
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[pkcs11.Attribute.PRIVATE_EXPONENT]
    certificate = x509.load_der_x509_certificate(issued.cert_der)
    ann_key = hsm.TokenKey(softhsm.config, issued.token_key_id)
    assert certificate.public_key() == ann_key.public_key()
    root = x509.load_der_x509_certificate(issued.chain_der[0])
    root.public_key().verify(  # type: ignore[union-attr, call-arg]
        certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256()
    )


async def test_another_secret_does_not_open_the_keys(pool: asyncpg.Pool, token: hsm.TokenConfig | None) -> None:
    """Started with a different PARAAF_KEY_SECRET, the signer refuses to start rather than issue keys it cannot keep."""
    await _keyring(pool, token=token)
    with pytest.raises(WrongSecret):
        await _keyring(pool, b"another long enough secret", token)


async def test_a_key_moved_to_another_person_s_row_does_not_open(pool: asyncpg.Pool, token: hsm.TokenConfig | None) -> None:
    """Copying Ann's encrypted key (or her key's reference in the token) into Bart's row (someone with table access) gives
    nothing: the key is bound to its row."""
    keyring = await _keyring(pool, token=token)
    async with pool.acquire() as conn:
        await keyring.credentials(conn, "default", ANN)
        await keyring.credentials(conn, "default", BART)
        await conn.execute(
            "UPDATE signer.certificates SET key_pem = (SELECT key_pem FROM signer.certificates WHERE person_id = 'ann.aerts')"
            " WHERE person_id = 'bart.baert'"
        )
        with pytest.raises(hsm.WrongKey if token else InvalidTag):
            await (await _keyring(pool, token=token)).credentials(conn, "default", BART)


async def test_rotating_the_secret_re_encrypts_every_key(pool: asyncpg.Pool, token: hsm.TokenConfig | None) -> None:
    """After `paraaf ca rotate-secret`, the new secret opens every key and the old one no longer does (keys in a token
    are not under the secret: nothing to re-encrypt, and they still sign)."""
    keyring = await _keyring(pool, token=token)
    new_secret = b"the new long key secret of the city"
    async with pool.acquire() as conn:
        before = await keyring.credentials(conn, "default", ANN)
        rotated = await keyring.rotate(conn, new_secret)
        after = await (await _keyring(pool, new_secret, token)).credentials(conn, "default", ANN)
    assert rotated == (0 if token else 2)  # the CA's key and Ann's
    assert (after.key_der, after.token_key_id) == (before.key_der, before.token_key_id)
    with pytest.raises(WrongSecret):
        await _keyring(pool, token=token)


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


async def test_credentials_prepared_once_are_not_read_again_but_a_signature_still_sees_a_revocation(pool: asyncpg.Pool) -> None:
    """A request prepares a signer's credentials once a process (handed_out); under another name, or after a revocation
    here, they are prepared again; revoked by another process, the next credentials (a signature's) are a new certificate."""
    keyring, elsewhere = await _keyring(pool), await _keyring(pool)
    async with pool.acquire() as conn:
        assert not keyring.handed_out("default", ANN)
        first = await keyring.credentials(conn, "default", ANN)
        assert keyring.handed_out("default", ANN) and not keyring.handed_out("default", ANN.model_copy(update={"name": "Ann Aerts-Peeters"}))
        await keyring.revoke(conn, "default", "ann.aerts", title=None, reason="lost card", by="test", at=datetime.now(UTC))
        assert not keyring.handed_out("default", ANN)
        second = await keyring.credentials(conn, "default", ANN)
        await elsewhere.revoke(conn, "default", "ann.aerts", title=None, reason="lost again", by="test", at=datetime.now(UTC))
        assert keyring.handed_out("default", ANN), "a revocation elsewhere is not known here"
        third = await keyring.credentials(conn, "default", ANN)
    assert len({first.cert_der, second.cert_der, third.cert_der}) == 3


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def test_token_settings_missing_a_token_or_pin_stop_the_signer_with_the_setting_to_set(tmp_path: Path) -> None:
    """PARAAF_PKCS11_MODULE without a token (label or slot), or without a PIN, or with an unreadable PIN file, is refused
    with the setting that is missing."""
    from services.signer.config import SignerSettings

    module = "/usr/lib/softhsm/libsofthsm2.so"
    with pytest.raises(hsm.TokenUnavailable, match="PARAAF_PKCS11_TOKEN"):
        hsm.token_config(SignerSettings(pkcs11_module=module, pkcs11_pin="1234"))
    with pytest.raises(hsm.TokenUnavailable, match="PARAAF_PKCS11_PIN"):
        hsm.token_config(SignerSettings(pkcs11_module=module, pkcs11_token="paraaf"))
    with pytest.raises(hsm.TokenUnavailable, match="PARAAF_PKCS11_PIN_FILE"):
        hsm.token_config(SignerSettings(pkcs11_module=module, pkcs11_token="paraaf", pkcs11_pin_file=tmp_path / "absent"))
    (tmp_path / "pin").write_text("4321\n")
    read = hsm.token_config(SignerSettings(pkcs11_module=module, pkcs11_slot=3, pkcs11_pin_file=tmp_path / "pin"))
    assert read == hsm.TokenConfig(module, None, 3, "4321") and "4321" not in repr(read)
    assert hsm.token_config(SignerSettings()) is None


async def test_a_token_that_is_not_there_stops_the_signer_with_a_sentence_naming_it(pool: asyncpg.Pool, softhsm) -> None:  # type: ignore[no-untyped-def]
    """A token label the module does not have: the keyring cannot make the CA and says which token of which module."""
    absent = hsm.TokenConfig(softhsm.config.module, "no-such-token", pin=softhsm.config.pin)
    keyring = await _keyring(pool, token=absent)
    async with pool.acquire() as conn:
        with pytest.raises(hsm.TokenUnavailable, match="no-such-token"):
            await keyring.authority(conn, "default")


async def test_two_signer_processes_issuing_a_first_certificate_at_once_agree_on_one(pool: asyncpg.Pool) -> None:
    """Two replicas of the signer meeting a new signer at the same moment (two of her documents at once) sign with
    one certificate, the one on file: no second certificate that the table forgot and a revocation would miss."""
    first, second = await _keyring(pool), await _keyring(pool)
    async with pool.acquire() as conn:  # the organisation's root exists since the first start
        await first.authority(conn, "default")
        await second.authority(conn, "default")

    async def credentials(keyring: Keyring):
        async with pool.acquire() as conn, conn.transaction():
            return await keyring.credentials(conn, "default", ANN)

    made = await asyncio.gather(credentials(first), credentials(second))
    on_file = await pool.fetch("SELECT cert_pem FROM signer.certificates WHERE person_id = 'ann.aerts'")
    assert made[0].cert_der == made[1].cert_der
    assert [x509.load_pem_x509_certificate(r["cert_pem"].encode()).public_bytes(serialization.Encoding.DER) for r in on_file] == [
        made[0].cert_der
    ]
