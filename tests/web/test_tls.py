"""`hub serve` speaks HTTPS given a certificate and key (HUB_WEB__CERTFILE/KEYFILE), and
refuses in one line a certificate setting it cannot use, before it listens."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from hub.cli import app
from tests.support.access import bearer, issue_token
from tests.support.hub_serve import HubServe

pytestmark = pytest.mark.e2e  # starts a server process


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (what a test CA would give)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_hub_serve_answers_over_https_with_the_configured_certificate(db, settings, database_url, tmp_path):
    cert, key = self_signed(tmp_path)
    token = issue_token(db, "admin")
    tls = {"HUB_WEB__CERTFILE": str(cert), "HUB_WEB__KEYFILE": str(key)}
    with HubServe(settings, database_url, tmp_path / "serve.log", extra_env=tls, scheme="https",
                  verify=str(cert)) as server:
        with httpx.Client(base_url=server.url, verify=str(cert), trust_env=False) as https:
            assert https.get("/healthz").status_code == 200
            assert https.get("/api/customers", params={"q": "x"}, headers=bearer(token)).status_code == 200
        # the certificate it presents is the configured one
        presented = ssl.get_server_certificate(("127.0.0.1", server.port))
        assert x509.load_pem_x509_certificate(presented.encode()) == x509.load_pem_x509_certificate(cert.read_bytes())
        # and plain HTTP on the same port gets no answer
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https://", "http://") + "/healthz", timeout=5, trust_env=False)


@pytest.mark.parametrize(("env", "message"), [
    ({"HUB_WEB__CERTFILE": "{dir}/cert.pem"}, "HUB_WEB__CERTFILE and HUB_WEB__KEYFILE go together"),
    ({"HUB_WEB__CERTFILE": "{dir}/missing.pem", "HUB_WEB__KEYFILE": "{dir}/key.pem"},
     "HUB_WEB__CERTFILE: {dir}/missing.pem is not a file"),
    ({"HUB_WEB__CERTFILE": "{dir}/cert.pem", "HUB_WEB__KEYFILE": "{dir}/junk.pem"}, "do not load as a certificate"),
])
def test_an_unusable_certificate_setting_is_one_line_and_exit_2(db, tmp_path, monkeypatch, env, message):
    self_signed(tmp_path)
    (tmp_path / "junk.pem").write_text("not a key")
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(dir=tmp_path))
    result = CliRunner().invoke(app, ["serve", "--port", "1"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message.format(dir=tmp_path) in result.output and len(result.output.strip().splitlines()) == 1
