"""TLS through asyncio's ssl, against an aiohttp server with a certificate made at test time.

The certificate comes from the ``cryptography`` package when it is installed, else from the
``openssl`` command; without either the tests are skipped (neither is a progressd dependency).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from http_testkit import Collector, aiohttp_server

from progressd.http import HttpPool, Origin


def _with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return True


def _with_openssl(cert: Path, key: Path) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return True


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if not (_with_cryptography(cert, key) or _with_openssl(cert, key)):
        pytest.skip("TLS test needs the cryptography package or the openssl command to make a cert")
    return cert, key


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def test_pool_speaks_tls_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with aiohttp_server(_app(), ssl_context=server_ctx) as port:
        pool = HttpPool(Origin("127.0.0.1", port, tls=True), ssl_context=client_ctx)
        done = Collector()
        pool.request("GET", "/", on_done=done)
        await done.wait()
        pool.request("GET", "/", on_done=done)
        results = await done.wait(2)
        assert [(r.status, r.body) for r in results] == [(200, b"secure")] * 2
        assert (pool.statistics().connects, pool.statistics().reused) == (1, 1)
        await pool.wait_closed()


async def test_pool_reports_tls_for_an_untrusted_certificate(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with aiohttp_server(_app(), ssl_context=server_ctx) as port:
        pool = HttpPool(Origin("127.0.0.1", port, tls=True))  # system trust store only
        done = Collector()
        pool.request("GET", "/", on_done=done)
        (result,) = await done.wait()
        assert (result.status, result.error) == (0, "tls")
        await pool.wait_closed()
