"""The webhook transport (service/events/transport.py) resolves each host once, checks
every address, connects to a checked address only, and keeps TLS checks on the host
NAME. Name resolution is the one thing replaced here (the event loop's getaddrinfo,
answering for made-up names), so a name can be made to resolve one way and then
another, as a DNS rebinding attacker would; the connections and TLS are real."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.events import attempt
from service.events.ssrf import parse_networks
from service.events.transport import CheckedTransport
from tests.events.support import LOOPBACK, Receiver

pytestmark = pytest.mark.security


class FakeDns:
    """Answers for names under `.test` from a script, one answer per lookup (the last
    one repeats); every other name resolves as usual."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in self.answers:
                return await real(host, port, *args, **kwargs)
            self.lookups.append(name)
            script = self.answers[name]
            addresses = script.pop(0) if len(script) > 1 else script[0]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, int(port or 0)),
                )
                for a in addresses
            ]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


def _client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=CheckedTransport(parse_networks(LOOPBACK), max_connections=4, **kwargs),
        follow_redirects=False,
        trust_env=False,
        timeout=5.0,
    )


async def _post(client: httpx.AsyncClient, url: str) -> str | int:
    outcome = await attempt.post(
        client, url, body=b"{}", headers={}, total_timeout=5.0, require_https=False
    )
    return outcome.error or outcome.status_code or 0


async def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # First answer: the (allowed) receiver. Any later lookup: the metadata address.
    dns = FakeDns({"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    dns.install(monkeypatch)
    with Receiver() as receiver:
        async with _client() as client:
            assert await _post(client, receiver.url(host="rebind.test")) == 204
        assert dns.lookups == ["rebind.test"]  # no second resolution to rebind
        assert receiver.requests[0].headers["host"] == f"rebind.test:{receiver.port}"


async def test_a_name_that_resolves_private_at_send_time_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeDns({"rebound.test": [["169.254.169.254"]]}).install(monkeypatch)
    async with _client() as client:
        assert await _post(client, "http://rebound.test/latest/meta-data/") == "blocked"


async def test_every_address_is_checked_not_only_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver() as receiver:
        FakeDns({"mixed.test": [["127.0.0.1", "10.1.2.3"]]}).install(monkeypatch)
        async with _client() as client:
            assert await _post(client, receiver.url(host="mixed.test")) == "blocked"
        assert receiver.requests == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it issued for hooks.test: (ca, cert, key) PEM files."""
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accord test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls_is_checked_against_the_host_name_not_the_address_connected_to(
    monkeypatch: pytest.MonkeyPatch, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = tls_files
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(ca))
    FakeDns({"hooks.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]}).install(monkeypatch)
    with Receiver(tls=server) as receiver:
        async with _client(ssl_context=trusting) as client:
            # Connected to 127.0.0.1, verified as hooks.test (SNI and certificate).
            assert await _post(client, receiver.url(host="hooks.test")) == 204
            # The same address under another name: the certificate does not match.
            assert await _post(client, receiver.url(host="other.test")) == "tls"
            assert await _post(client, receiver.url(host="127.0.0.1")) == "tls"
        # The dispatcher's own client trusts only the public CAs: a private CA fails.
        async with attempt.new_client(
            parse_networks(LOOPBACK), connect_timeout=5.0, connections=2
        ) as default:
            assert await _post(default, receiver.url(host="hooks.test")) == "tls"
    assert [r.headers["host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"]
