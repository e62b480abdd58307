"""Client certificates verified against [tls] client_ca authenticate with SASL EXTERNAL."""

import pytest

from conftest import received_header, split_trace
from mail import message, smtp_ssl
from pki import CA

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def client_ca(tmp_path):
    return CA(tmp_path / "client-ca", name="sealpost test client CA")


def auth_mechanisms(client):
    return client.esmtp_features.get("auth", "").upper().split()


def test_trusted_client_certificate_authenticates_with_auth_external(make_server, client_ca):
    server = make_server({"tls": {"client_ca": str(client_ca.cert)}})
    chain, key = client_ca.issue("alice", emails=[ALICE], client=True)
    context = server.tls_context()
    context.load_cert_chain(str(chain), str(key))
    sent = message(sender=ALICE, to=BOB, body="authenticated by certificate\r\n")
    with smtp_ssl(server.ports["submissions"], context) as client:
        client.ehlo("client.example.net")
        assert "EXTERNAL" in auth_mechanisms(client), client.esmtp_features
        code, text = client.docmd("AUTH", "EXTERNAL =")
        assert code == 235, text
        assert client.sendmail(ALICE, [BOB], sent) == {}
    entries = server.mail_list(BOB)
    assert len(entries) == 1, entries
    stored = server.mail_cat(BOB, entries[0][0])
    split_trace(stored, sent)
    assert "with ESMTPSA" in received_header(stored)


def test_client_certificate_from_another_ca_gets_no_rights(make_server, client_ca, tmp_path):
    server = make_server({"tls": {"client_ca": str(client_ca.cert)}})
    stranger = CA(tmp_path / "stranger-ca", name="someone else's CA")
    chain, key = stranger.issue("alice-forged", emails=[ALICE], client=True)
    context = server.tls_context()
    context.load_cert_chain(str(chain), str(key))
    with smtp_ssl(server.ports["submissions"], context) as client:
        code, _ = client.ehlo("client.example.net")
        assert code == 250, "handshake or session failed with an untrusted client certificate"
        assert "EXTERNAL" not in auth_mechanisms(client), client.esmtp_features
        code, text = client.docmd("AUTH", "EXTERNAL =")
        assert code in (535, 504), (code, text)
        code, text = client.mail(ALICE)
        assert code == 530, (code, text)
    assert server.mail_list(BOB) == []


def test_without_a_client_certificate_auth_external_is_refused(make_server, client_ca):
    server = make_server({"tls": {"client_ca": str(client_ca.cert)}})
    with smtp_ssl(server.ports["submissions"], server.tls_context()) as client:
        client.ehlo("client.example.net")
        assert "PLAIN" in auth_mechanisms(client), client.esmtp_features
        code, text = client.docmd("AUTH", "EXTERNAL =")
        assert code in (535, 504), (code, text)
