"""TLS on 25, 587 and 465 as `openssl s_client` sees it, against the generated CA."""

import re
import stat

import pytest

import s_client
from pki import file_fingerprint, openssl

LISTENERS = [("smtp", True), ("submission", True), ("submissions", False)]
LEGACY = "DEFAULT:@SECLEVEL=0"


def handshake(server, listener, *extra, **kwargs):
    starttls = listener != "submissions"
    return s_client.run(server.ports[listener], *extra, starttls=starttls, ca=server.ca_path, **kwargs)


def client_hello_versions(output):
    """The legacy_version field of every ClientHello s_client -msg shows it sending."""
    versions = []
    for match in re.finditer(r">>> [^\n]*ClientHello\n((?:\s+[0-9a-f]{2}(?: [0-9a-f]{2})*\n)+)", output):
        octets = match.group(1).split()
        versions.append(octets[4] + octets[5])
    return versions


def assert_refused_by_server(run, offered_version):
    """The client really offered `offered_version` and the server's TLS stack said no."""
    assert not run.ok, f"handshake succeeded: {run}"
    assert "Didn't find STARTTLS" not in run.output, f"STARTTLS never happened: {run}"
    assert client_hello_versions(run.output) == [offered_version], (
        f"s_client did not send a ClientHello for {offered_version}: {run}")
    assert not re.search(r"<<< [^\n]*ServerHello", run.output), f"server answered with a ServerHello: {run}"
    assert re.search(r"<<< [^\n]*Alert", run.output), f"no TLS alert from the server: {run}"


def test_generated_ca_is_announced_and_written_to_data_dir(server):
    assert server.ca_path == server.generated_tls_dir / "ca.pem"
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert (server.generated_tls_dir / name).is_file(), name
    verify = openssl("verify", "-CAfile", str(server.ca_path), str(server.generated_tls_dir / "cert.pem"))
    assert verify.strip().endswith("OK"), verify


@pytest.mark.parametrize("version,expected", [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")])
def test_tls_handshake_succeeds_and_chain_verifies_with_generated_ca(server, version, expected):
    for listener, _ in LISTENERS:
        run = handshake(server, listener, version)
        assert run.ok, run
        assert run.verified(), run
        assert run.protocol() == expected, run


@pytest.mark.parametrize("version,hello", [("-tls1", "0301"), ("-tls1_1", "0302")])
def test_tls_1_0_and_1_1_are_refused_by_the_server(server, version, hello):
    for listener, _ in LISTENERS:
        run = handshake(server, listener, version, "-cipher", LEGACY, "-msg")
        assert_refused_by_server(run, hello)


def test_tls12_without_ecdhe_is_refused(server):
    for listener, _ in LISTENERS:
        run = handshake(server, listener, "-tls1_2", "-cipher", "AES128-GCM-SHA256", "-msg")
        assert_refused_by_server(run, "0303")


def test_tls12_cbc_cipher_is_refused(server):
    for listener, _ in LISTENERS:
        run = handshake(server, listener, "-tls1_2", "-cipher",
                        "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA", "-msg")
        assert_refused_by_server(run, "0303")


def test_alpn_for_another_protocol_is_refused_alpn_smtp_accepted(server):
    for listener, _ in LISTENERS:
        wrong = handshake(server, listener, "-alpn", "imap")
        assert not wrong.ok, f"ALPN imap accepted on {listener}: {wrong}"
        right = handshake(server, listener, "-alpn", "smtp")
        assert right.ok, right
        assert "ALPN protocol: smtp" in right.output, right


def test_generated_key_files_are_private_and_cert_names_the_host(server):
    tls_dir = server.generated_tls_dir
    keys = [p for p in tls_dir.iterdir() if "key" in p.name]
    assert tls_dir / "key.pem" in keys
    for key in keys:
        mode = stat.S_IMODE(key.stat().st_mode)
        assert mode == 0o600, f"{key} has mode {oct(mode)}"
    text = openssl("x509", "-in", str(tls_dir / "cert.pem"), "-noout", "-text")
    san = text.split("X509v3 Subject Alternative Name:", 1)[1].splitlines()[1]
    names = {part.strip() for part in san.split(",")}
    for expected in ("DNS:mail.example.test", "DNS:localhost", "IP Address:127.0.0.1",
                     "IP Address:0:0:0:0:0:0:0:1"):
        assert expected in names, f"{expected} not in SAN {names}"


def test_generated_certificate_is_reused_after_restart(server):
    before_file = file_fingerprint(server.generated_tls_dir / "cert.pem")
    before_ca = file_fingerprint(server.ca_path)
    before_served = handshake(server, "submissions").fingerprint()
    assert before_served == before_file
    server.restart()
    assert file_fingerprint(server.generated_tls_dir / "cert.pem") == before_file
    assert file_fingerprint(server.ca_path) == before_ca
    after = handshake(server, "submissions")
    assert after.ok and after.verified(), after
    assert after.fingerprint() == before_file


def session_tickets_seen(server, listener):
    session = s_client.Interactive(server.ports[listener], starttls=listener != "submissions",
                                   ca=server.ca_path)
    try:
        # TLS 1.3 tickets come right after the handshake, before any reply.
        session.send("QUIT")
        session.wait_for("221")
    finally:
        run = session.finish()
    assert "TLSv1.3" in run.output, run
    return run.output.count("Post-Handshake New Session Ticket arrived")


def test_port_25_sends_no_session_ticket_but_465_does(server):
    assert session_tickets_seen(server, "submissions") >= 1
    assert session_tickets_seen(server, "submission") >= 1
    assert session_tickets_seen(server, "smtp") == 0


def test_session_tickets_go_only_to_the_configured_listeners(make_server):
    server = make_server({"tls": {"session_tickets": ["submission"]}})
    assert session_tickets_seen(server, "submission") >= 1
    assert session_tickets_seen(server, "submissions") == 0
    assert session_tickets_seen(server, "smtp") == 0
