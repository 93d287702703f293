"""A real RFC 3161 time-stamping authority over HTTP, for tests: its own root
and TSA certificate, pyHanko's reference token builder behind an aiohttp
server on 127.0.0.1. Clients talk to it exactly as to a public TSA."""

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp import web
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from tests.support.net import free_port

__all__ = ["TimestampAuthority"]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])




class TimestampAuthority:
    def __init__(self) -> None:
        now = datetime.now(UTC)
        root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        root = (
            x509.CertificateBuilder()
            .subject_name(_name("Test TSA Root"))
            .issuer_name(_name("Test TSA Root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(root_key, hashes.SHA256())
        )
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tsa = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Time Stamping Unit"))
            .issuer_name(root.subject)
            .public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=300))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        self.root_pem = root.public_bytes(serialization.Encoding.PEM)
        der = serialization.Encoding.DER
        self._stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(tsa.public_bytes(der)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                tsa_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            ),
            certs_to_embed=[asn1_x509.Certificate.load(root.public_bytes(der))],
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/tsa"
        self.requests = 0
        self.held = 0  # requests waiting on hold() right now
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None

    def hold(self) -> None:
        """Answer nothing until release(): each signature under way waits here, as on a slow public TSA."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def _answer(self, request: web.Request) -> web.Response:
        if request.content_type != "application/timestamp-query":
            return web.Response(status=415, text="send application/timestamp-query")
        self.requests += 1
        if not self._open.is_set():
            self.held += 1
            try:
                await self._open.wait()
            finally:
                self.held -= 1
        query = tsp.TimeStampReq.load(await request.read())
        response = self._stamper.request_tsa_response(query)
        return web.Response(body=response.dump(), content_type="application/timestamp-reply")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tsa", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
