"""Outbound delivery end to end (issue 4): a sending sealpost's queue worker delivers to a
second sealpost and to Debian's Postfix, through sealpost-testdns, past an MTA-STS policy
server and SMTP men in the middle, all on loopback (see delivery_fixtures.py for the map).
"""

import smtplib
import socket
import ssl
import urllib.request

import dns.message
import dns.query
import dns.rdatatype

from delivery_fixtures import (  # noqa: F401 (pytest fixtures)
    MEMORY_IP, MITM_IP, POSTFIX_IP, POSTFIX_MX, RECEIVER_IP, RECEIVER_MX, STS_IP, TIMEOUT,
    make_sender, world,
)


def query(world, name, rdtype):
    host, port = world.dns.address.rsplit(":", 1)
    response = dns.query.udp(dns.message.make_query(name, rdtype), host, port=int(port), timeout=5)
    return [rr.to_text() for rrset in response.answer for rr in rrset
            if rr.rdtype == dns.rdatatype.from_text(rdtype)]


def ehlo_keywords(ip, port):
    with smtplib.SMTP(ip, port, timeout=TIMEOUT) as client:
        code, _ = client.ehlo("probe.sender.test")
        assert code == 250
        return set(client.esmtp_features)


# ---- the fixtures themselves ----

def test_fixtures_dns_answers_and_receivers_listen(world):
    assert query(world, "plain.test", "MX") == [f"10 {RECEIVER_MX}."]
    assert query(world, RECEIVER_MX, "A") == [RECEIVER_IP]
    assert query(world, POSTFIX_MX, "A") == [POSTFIX_IP]
    assert query(world, "nullmx.test", "MX") == ["0 ."]
    assert query(world, "_mta-sts.strip-sts.test", "TXT") == ['"v=STSv1; id=20260101T000000"']
    assert query(world, "mta-sts.strip-sts.test", "A") == [STS_IP]
    assert query(world, "_smtp._tls.mismatch-testing.test", "TXT") == [
        '"v=TLSRPTv1; rua=mailto:tlsrpt@plain.test"']
    assert query(world, "_25._tcp.mx.dane-good.test", "TLSA") == [f"3 1 1 {world.tlsa}"]
    assert query(world, "_25._tcp.mx.dane-bad.test", "TLSA") == [f"3 1 1 {'00' * 32}"]

    # The policy server, verified against the test CA under the policy host's name.
    context = ssl.create_default_context(cafile=str(world.ca.cert))
    context.check_hostname = True
    request = urllib.request.Request(f"https://{STS_IP}:{world.sts.port}/.well-known/mta-sts.txt",
                                     headers={"Host": "mta-sts.strip-sts.test"})
    sock = socket.create_connection((STS_IP, world.sts.port), timeout=TIMEOUT)
    with context.wrap_socket(sock, server_hostname="mta-sts.strip-sts.test") as tls:
        tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.strip-sts.test\r\n\r\n")
        body = b""
        while chunk := tls.recv(4096):
            body += chunk
    assert b"200 OK" in body.split(b"\r\n")[0] and b"mode: enforce" in body, (request, body)

    # Both receivers offer STARTTLS with a certificate for their MX name from the test CA.
    for ip, name in ((RECEIVER_IP, RECEIVER_MX), (POSTFIX_IP, POSTFIX_MX)):
        with smtplib.SMTP(ip, world.port, timeout=TIMEOUT) as client:
            client.ehlo("probe.sender.test")
            assert client.has_extn("starttls"), (ip, client.esmtp_features)
            client._host = name  # smtplib sends SNI and checks the name from here
            client.starttls(context=ssl.create_default_context(cafile=str(world.ca.cert)))
            assert client.ehlo("probe.sender.test")[0] == 250

    # The stripping proxy hides STARTTLS and refuses it; the relay shows the receiver's.
    assert "starttls" not in ehlo_keywords(MITM_IP, world.port)
    with smtplib.SMTP(MITM_IP, world.port, timeout=TIMEOUT) as client:
        client.ehlo("probe.sender.test")
        assert client.docmd("STARTTLS")[0] == 502
    assert "starttls" in ehlo_keywords(MEMORY_IP, world.port)


def test_fixtures_receivers_store_what_they_accept(world):
    from mail import message, new_message_id
    mid = new_message_id("fixture")
    sent = message(sender="alice@sender.test", to="bob@plain.test", message_id=mid)
    with smtplib.SMTP(RECEIVER_IP, world.port, timeout=TIMEOUT) as client:
        assert client.sendmail("alice@sender.test", ["bob@plain.test"], sent) == {}
        code, text = client.docmd("RCPT TO:<nobody@plain.test>")
    assert world.stored("bob@plain.test", mid)
    sent = message(sender="alice@sender.test", to="bob@pfx.test", message_id=mid)
    with smtplib.SMTP(POSTFIX_IP, world.port, timeout=TIMEOUT) as client:
        assert client.sendmail("alice@sender.test", ["bob@pfx.test"], sent) == {}
    from delivery_fixtures import wait_until
    wait_until(lambda: any(mid.encode() in m for m in world.postfix.messages("bob")), 20,
               "Postfix did not deliver to its Maildir", diagnose=world.postfix.log)
