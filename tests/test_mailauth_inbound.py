"""Mail authentication on port 25 end to end: Python's smtplib delivers, dkimpy signs,
and sealpost-testdns on loopback is the whole DNS (no resolver mocks).

The client connects from 127.0.0.1 and says EHLO client.sender.test. Zones:
  sender.test  SPF allows 127.0.0.1, an RSA key at sel._domainkey, p=reject with rua
  reject.test  p=reject, SPF -all          junk.test  p=quarantine, SPF -all
  org.test     p=none np=reject (real.org.test exists)
  slow.test    its _dmarc query is never answered
"""

import base64
import smtplib
import subprocess

import dkim
import pytest

from mail import message
from testdns import TestDns, txt_strings

BOB = "bob@example.test"
AUTHSERV_ID = "mail.example.test"  # the hostname of conftest's servers


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    """(private PEM, public DER base64) of a fresh RSA-2048 key."""
    path = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    return path.read_bytes(), base64.b64encode(public).decode()


@pytest.fixture
def dns(rsa_key):
    _, public = rsa_key
    zones = {
        "sender.test": '@ TXT "v=spf1 ip4:127.0.0.1 -all"\n'
                       f'sel._domainkey TXT {txt_strings("v=DKIM1; k=rsa; p=" + public)}\n'
                       '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test"\n',
        "reject.test": '@ TXT "v=spf1 -all"\n_dmarc TXT "v=DMARC1; p=reject"\n',
        "junk.test": '@ TXT "v=spf1 -all"\n_dmarc TXT "v=DMARC1; p=quarantine"\n',
        "org.test": '@ TXT "v=spf1 -all"\n_dmarc TXT "v=DMARC1; p=none; np=reject"\nreal A 192.0.2.1\n',
        "slow.test": '@ TXT "v=spf1 -all"\n',
    }
    server = TestDns(zones, silent=["_dmarc.slow.test"])
    yield server
    server.stop()


@pytest.fixture
def mx(make_server, dns):
    """start(mailauth={...}) -> a server whose resolver is the test DNS."""
    def start(**mailauth):
        config = {"dns": {"nameservers": [dns.address], "timeout": 1}}
        if mailauth:
            config["mailauth"] = mailauth
        return make_server(config=config)
    return start


def sign(raw: bytes, rsa_key) -> bytes:
    private, _ = rsa_key
    signature = dkim.sign(raw, b"sel", b"sender.test", private,
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + raw


def send(server, mail_from, raw, to=BOB):
    """Delivers on port 25; returns the (code, text) of the end of DATA."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.sender.test",
                      timeout=30) as client:
        client.ehlo()
        assert client.mail(mail_from)[0] == 250
        assert client.rcpt(to)[0] == 250
        return client.data(raw)


def header_fields(stored: bytes):
    """[(name, unfolded value)] of the stored message's header."""
    head = stored.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for line in head.split("\r\n"):
        if line.startswith((" ", "\t")) and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def our_results(stored: bytes) -> str:
    results = [value for name, value in header_fields(stored)
               if name.lower() == "authentication-results" and value.startswith(AUTHSERV_ID)]
    assert len(results) == 1, f"expected one Authentication-Results of ours: {results}"
    return results[0]


def only_message(server, mailbox=None) -> bytes:
    listed = server.mail_list(BOB, mailbox=mailbox)
    assert len(listed) == 1, f"{mailbox or 'INBOX'} holds {listed}"
    return server.mail_cat(BOB, listed[0][0], mailbox=mailbox)


def test_signed_aligned_message_passes_and_carries_our_results_under_received(mx, rsa_key):
    server = mx()
    raw = sign(message(sender="news@sender.test", to=BOB), rsa_key)
    code, text = send(server, "bounce@sender.test", raw)
    assert code == 250, text
    stored = only_message(server)
    names = [name for name, _ in header_fields(stored)]
    assert names[:3] == ["Received", "Authentication-Results", "DKIM-Signature"], names
    results = our_results(stored)
    assert "spf=pass smtp.mailfrom=bounce@sender.test" in results, results
    assert "dkim=pass header.d=sender.test header.s=sel header.a=rsa-sha256" in results, results
    assert "dmarc=pass (p=reject sp=reject dis=none) header.from=sender.test" in results, results
    assert "arc=none" in results, results
    assert stored.endswith(raw)


def test_dmarc_fail_under_p_reject_is_550_at_the_end_of_data(mx):
    server = mx()
    code, text = send(server, "x@elsewhere.test", message(sender="ceo@reject.test", to=BOB))
    assert code == 550, text
    assert text.startswith(b"5.7.1 "), text
    assert b"reject.test" in text
    assert server.mail_list(BOB) == []


def test_tampered_signed_message_fails_dkim_and_dmarc(mx, rsa_key):
    server = mx()
    raw = sign(message(sender="news@sender.test", to=BOB, body="Pay 10 EUR.\r\n"), rsa_key)
    tampered = raw.replace(b"Pay 10 EUR.", b"Pay 99 EUR.")
    # MAIL FROM of another domain: only the (now broken) signature could align.
    code, text = send(server, "x@elsewhere.test", tampered)
    assert code == 550, text


def test_dmarc_fail_under_p_quarantine_is_delivered_to_junk(mx):
    server = mx()
    code, text = send(server, "x@elsewhere.test", message(sender="offers@junk.test", to=BOB))
    assert code == 250, text
    assert server.mail_list(BOB) == []
    results = our_results(only_message(server, mailbox="Junk"))
    assert "dmarc=fail (p=quarantine sp=quarantine dis=quarantine) header.from=junk.test" in results


def test_unanswered_dmarc_query_is_451_never_a_pass(mx):
    server = mx()
    code, text = send(server, "x@slow.test", message(sender="x@slow.test", to=BOB))
    assert code == 451, text
    assert text.startswith(b"4.7.1 "), text
    assert server.mail_list(BOB) == []


def test_np_rejects_mail_from_a_non_existent_subdomain(mx):
    server = mx()
    code, text = send(server, "x@elsewhere.test", message(sender="x@ghost.org.test", to=BOB))
    assert code == 550, text
    # An existing subdomain gets sp (= p = none): delivered, with the failure noted.
    code, text = send(server, "x@elsewhere.test", message(sender="x@real.org.test", to=BOB))
    assert code == 250, text
    assert "dmarc=fail" in our_results(only_message(server))


def test_forged_results_claiming_our_authserv_id_are_removed(mx, rsa_key):
    server = mx()
    forged = [f"Authentication-Results: {AUTHSERV_ID}; dmarc=pass header.from=bank.test",
              "Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=x@sender.test"]
    raw = sign(message(sender="news@sender.test", to=BOB, extra_headers=forged), rsa_key)
    code, text = send(server, "bounce@sender.test", raw)
    assert code == 250, text
    stored = only_message(server)
    assert b"bank.test" not in stored
    assert b"Authentication-Results: relay.example.net;" in stored
    assert "dmarc=pass" in our_results(stored)


def test_enforce_false_only_annotates(mx):
    server = mx(enforce=False)
    code, text = send(server, "x@elsewhere.test", message(sender="ceo@reject.test", to=BOB))
    assert code == 250, text
    results = our_results(only_message(server))
    assert "dmarc=fail (p=reject sp=reject dis=none) header.from=reject.test" in results, results


def test_verify_false_stores_mail_unverified(mx):
    server = mx(verify=False)
    raw = message(sender="ceo@reject.test", to=BOB)
    code, text = send(server, "x@elsewhere.test", raw)
    assert code == 250, text
    stored = only_message(server)
    assert b"Authentication-Results" not in stored
    assert stored.endswith(raw)
