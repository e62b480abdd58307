"""Configured certificates: reload on SIGHUP without dropping sessions, a bad reload keeps
the old certificate, and the certificate is chosen by SNI and by signature scheme."""

import os
import shutil
import signal
import ssl
import socket
import time

import pytest

import s_client
from conftest import PASSWORDS
from mail import login, message, smtp_ssl
from pki import CA, der_fingerprint, file_fingerprint

ALICE = "alice@example.test"
BOB = "bob@example.test"
NAMES = ["mail.example.test", "localhost"]


@pytest.fixture
def server_ca(tmp_path):
    return CA(tmp_path / "server-ca", name="sealpost test server CA")


def install(chain, key, live_dir):
    """Puts a cert/key pair in place the way an ACME client does: write aside, then rename."""
    live_dir.mkdir(exist_ok=True)
    for source, name in ((key, "key.pem"), (chain, "cert.pem")):
        staged = live_dir / f".{name}.new"
        shutil.copyfile(source, staged)
        os.replace(staged, live_dir / name)
    return live_dir / "cert.pem", live_dir / "key.pem"


def served_fingerprint(port, servername="localhost"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=servername) as tls:
            return der_fingerprint(tls.getpeercert(binary_form=True))


def wait_for_fingerprint(port, expected, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        seen = served_fingerprint(port)
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"still serving {seen}, not {expected}, {timeout}s after reload"
        time.sleep(0.1)


def configured_server(make_server, server_ca, tmp_path, extra=None):
    chain, key = server_ca.issue("first", dns=NAMES, ips=["127.0.0.1"])
    cert_path, key_path = install(chain, key, tmp_path / "live")
    tls = {"cert": str(cert_path), "key": str(key_path)}
    tls.update(extra or {})
    server = make_server({"tls": tls})
    assert server.stdout_lines[-1] == "serving the configured certificate", server.stdout_lines
    assert not (server.data_dir / "tls" / "ca.pem").exists()
    return server, chain


def test_sighup_serves_new_certificate_and_open_sessions_keep_working(make_server, server_ca, tmp_path):
    server, first = configured_server(make_server, server_ca, tmp_path)
    port = server.ports["submissions"]
    assert served_fingerprint(port) == file_fingerprint(first)

    context = server.tls_context(cafile=server_ca.cert)
    with smtp_ssl(port, context) as open_session:
        open_session.ehlo("client.example.net")
        assert login(open_session, ALICE, PASSWORDS[ALICE])[0] == 235

        second, second_key = server_ca.issue("second", dns=NAMES, ips=["127.0.0.1"])
        install(second, second_key, tmp_path / "live")
        server.signal(signal.SIGHUP)
        wait_for_fingerprint(port, file_fingerprint(second))

        assert open_session.noop()[0] == 250
        assert open_session.sendmail(ALICE, [BOB], message(sender=ALICE, to=BOB)) == {}
    assert len(server.mail_list(BOB)) == 1

    run = s_client.run(server.ports["smtp"], ca=server_ca.cert)
    assert run.ok and run.verified(), run
    assert run.fingerprint() == file_fingerprint(second)


def test_garbage_certificate_on_reload_keeps_the_previous_one(make_server, server_ca, tmp_path):
    server, first = configured_server(make_server, server_ca, tmp_path)
    port = server.ports["submissions"]
    live = tmp_path / "live"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    install(garbage, garbage, live)
    server.signal(signal.SIGHUP)
    # Nothing to poll for when nothing should change: watch for a while instead.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert served_fingerprint(port) == file_fingerprint(first)
        time.sleep(0.1)
    assert server.proc.poll() is None, "server died on a bad reload"
    with smtp_ssl(port, server.tls_context(cafile=server_ca.cert)) as client:
        assert client.ehlo("client.example.net")[0] == 250


def test_sni_picks_the_certificate_for_the_requested_name(make_server, server_ca, tmp_path):
    other, other_key = server_ca.issue("other", dns=["other.example.test"])
    server, first = configured_server(make_server, server_ca, tmp_path,
                                      {"certificates": [{"cert": str(other), "key": str(other_key)}]})
    for listener, starttls in (("smtp", True), ("submissions", False)):
        port = server.ports[listener]
        run = s_client.run(port, starttls=starttls, ca=server_ca.cert, servername="other.example.test",
                           verify_hostname="other.example.test")
        assert run.ok and run.verified(), run
        assert run.fingerprint() == file_fingerprint(other)
        run = s_client.run(port, starttls=starttls, ca=server_ca.cert, servername="mail.example.test",
                           verify_hostname="mail.example.test")
        assert run.ok and run.verified(), run
        assert run.fingerprint() == file_fingerprint(first)


def test_rsa_certificate_for_rsa_only_clients_ecdsa_otherwise(make_server, server_ca, tmp_path):
    rsa_ca = CA(tmp_path / "rsa-ca", name="sealpost test RSA CA", kind="rsa")
    rsa, rsa_key = rsa_ca.issue("rsa", dns=NAMES, kind="rsa")
    server, ecdsa = configured_server(make_server, server_ca, tmp_path,
                                      {"certificates": [{"cert": str(rsa), "key": str(rsa_key)}]})
    for listener, starttls in (("smtp", True), ("submissions", False)):
        port = server.ports[listener]
        rsa_only = s_client.run(port, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", starttls=starttls,
                                servername="mail.example.test")
        assert rsa_only.ok, rsa_only
        assert rsa_only.fingerprint() == file_fingerprint(rsa), rsa_only
        default = s_client.run(port, starttls=starttls, servername="mail.example.test")
        assert default.ok, default
        assert default.fingerprint() == file_fingerprint(ecdsa), default
