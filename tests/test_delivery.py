"""Outbound delivery end to end (issue 4): a sending sealpost's queue worker delivers to a
second sealpost and to Debian's Postfix, through sealpost-testdns, past an MTA-STS policy
server and SMTP men in the middle, all on loopback (see delivery_fixtures.py for the map).
"""

import email
import gzip
import json
import smtplib
import socket
import ssl
import time

import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import received_header
from delivery_fixtures import (  # noqa: F401 (world and make_sender are pytest fixtures)
    ALICE, ALICE_PASSWORD, MEMORY_IP, MITM_IP, POSTFIX_IP, POSTFIX_MX, RECEIVER_IP, RECEIVER_MX,
    RECEIVER_PASSWORD, STS_IP, TIMEOUT, TLSRPT_RUA, dsn_parts, imap_messages, imaps_login,
    make_sender, submit, submit_many, wait_until, world,
)
from mail import header_values, message, new_message_id
from mailread import DOT_LEADING_BODY


def query(world, name, rdtype, signatures=False):
    """The answer's records of `rdtype` as text; with `signatures`, the types its RRSIGs cover."""
    host, port = world.dns.address.rsplit(":", 1)
    request = dns.message.make_query(name, rdtype, want_dnssec=signatures)
    response = dns.query.udp(request, host, port=int(port), timeout=5)
    if signatures:
        return [dns.rdatatype.to_text(rr.type_covered) for rrset in response.answer for rr in rrset
                if rr.rdtype == dns.rdatatype.RRSIG]
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
    # DANE's zones are signed (under the root key in the trust anchor file); the others are not.
    assert world.trust_anchor and open(world.trust_anchor).read().strip()
    assert query(world, "dane-good.test", "MX", signatures=True) == ["MX"]
    assert query(world, "_25._tcp.mx.dane-good.test", "TLSA", signatures=True) == ["TLSA"]
    assert query(world, "plain.test", "MX", signatures=True) == []

    # The policy server, verified against the test CA under the policy host's name.
    context = ssl.create_default_context(cafile=str(world.ca.cert))
    context.check_hostname = True
    sock = socket.create_connection((STS_IP, world.sts.port), timeout=TIMEOUT)
    with context.wrap_socket(sock, server_hostname="mta-sts.strip-sts.test") as tls:
        tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.strip-sts.test\r\n\r\n")
        body = b""
        while chunk := tls.recv(4096):
            body += chunk
    assert b"200 OK" in body.split(b"\r\n")[0] and b"mode: enforce" in body, body

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
    mid = new_message_id("fixture")
    sent = message(sender="alice@sender.test", to="bob@plain.test", message_id=mid)
    with smtplib.SMTP(RECEIVER_IP, world.port, timeout=TIMEOUT) as client:
        assert client.sendmail("alice@sender.test", ["bob@plain.test"], sent) == {}
        client.rset()
        client.mail("alice@sender.test")
        assert client.rcpt("nobody@plain.test")[0] == 550
    assert world.stored("bob@plain.test", mid)
    sent = message(sender="alice@sender.test", to="bob@pfx.test", message_id=mid)
    with smtplib.SMTP(POSTFIX_IP, world.port, timeout=TIMEOUT) as client:
        assert client.sendmail("alice@sender.test", ["bob@pfx.test"], sent) == {}
    wait_until(lambda: any(mid.encode() in m for m in world.postfix.messages("bob")), 20,
               "Postfix did not deliver to its Maildir", diagnose=world.postfix.log)


# ---- delivery cases (issue 4) ----

DELIVERY_TIMEOUT = 30


def outbound(to, tag, subject="delivery test", body="Hello from sender.test.\r\n", extra_headers=()):
    return message(sender=ALICE, to=to, subject=subject, body=body, message_id=new_message_id(tag),
                   extra_headers=extra_headers)


def message_id_of(raw: bytes) -> str:
    return header_values(raw, "Message-ID")[0]


def wait_stored(world, address, tag, count=1, timeout=DELIVERY_TIMEOUT, sender=None):
    def diagnose():
        lines = [l["line"] for l in sender.delivery_lines()] if sender else []
        return f"delivery lines of the sender: {lines}\nsender log tail:\n{sender.log_text()[-3000:] if sender else ''}"
    return wait_until(lambda: len(world.stored(address, tag)) >= count and world.stored(address, tag),
                      timeout, f"{count} message(s) tagged {tag} did not reach {address}", diagnose=diagnose)


def assert_nothing_stored(world, address, tag):
    assert world.stored(address, tag) == [], f"{address} received a message tagged {tag}"


def queue_entries(sender):
    """`sealpost queue list --json` as a list of dicts."""
    data = sender.queue_json()
    return data if isinstance(data, list) else data.get("entries", data)


def queue_entry_for(sender, recipient):
    entries = [e for e in queue_entries(sender) if recipient in str(e.get("recipients"))]
    assert len(entries) == 1, f"queue entries for {recipient}: {entries}"
    return entries[0]


def test_plain_delivery_to_sealpost_is_byte_exact_over_verified_tls(world, make_sender):
    sender = make_sender()
    tag = "plain-exact"
    to = "exact@plain.test"
    sent = [
        outbound(to, tag, "dots", DOT_LEADING_BODY),
        outbound(to, tag, "Grüße aus Köln ✉", "Ünïcödé bödy: 日本語, emoji 📬\r\n",
                 extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                                "Content-Transfer-Encoding: 8bit"]),
        outbound(to, tag, "long", "".join(f"line {n:06d} " + "x" * 60 + "\r\n" for n in range(16000))),
    ]
    for raw in sent:
        assert submit(sender, to, raw) == {}
    wait_stored(world, to, tag, count=len(sent), sender=sender)
    stored = {message_id_of(raw): raw for raw in world.stored_messages(to, tag)}
    assert len(stored) == len(sent), f"duplicates or missing: {sorted(stored)}"
    for raw in sent:
        got = stored[message_id_of(raw)]
        assert got.endswith(raw), (f"the receiver's copy does not end with the submitted bytes\n"
                                   f"got: {got[:800]!r}\nsent: {raw[:300]!r}")
        received = received_header(got)
        assert "by mx.receiver.test with ESMTPS (TLSv1.3" in received, received

    # The same bytes over IMAP at the receiver.
    client = imaps_login(world.receiver, to, RECEIVER_PASSWORD, ca=world.ca.cert)
    try:
        over_imap = {message_id_of(raw): raw for raw in imap_messages(client)}
    finally:
        client.logout()
    for raw in sent:
        assert over_imap[message_id_of(raw)].endswith(raw)

    lines = sender.delivery_lines("plain.test", "delivered")
    assert len(lines) == len(sent), [l["line"] for l in lines]
    for n, line in enumerate(lines):
        assert line["mx"] == "mx.receiver.test" and line["ip"].startswith("127.0.0.2"), line
        assert line["tls"] == "TLSv1.3" and line["cipher"] not in ("", "-", "none"), line
        # The first verified session puts plain.test into the downgrade memory; a later
        # message may still ride the first one's connection (and its route).
        assert line["policy"] in (("opportunistic",) if n == 0 else ("opportunistic", "seen-before")), line
        assert line["verified"] == "yes" and line["check"] == "pkix", line
        assert line["reply"].startswith("250"), line
    assert queue_entries(sender) == []
    assert "plain.test" in sender.cli("tls-memory", "list").stdout.decode()


def test_plain_delivery_to_postfix(world, make_sender):
    sender = make_sender()
    raw = outbound("bob@pfx.test", "postfix")
    mid = message_id_of(raw)
    assert submit(sender, "bob@pfx.test", raw) == {}

    def arrived():
        return [m for m in world.postfix.messages("bob") if mid.encode() in m]
    got = wait_until(arrived, DELIVERY_TIMEOUT, "Postfix did not store the message",
                     diagnose=lambda: f"{[l['line'] for l in sender.delivery_lines()]}\n"
                                      f"{sender.log_text()[-3000:]}\npostfix log:\n{world.postfix.log()}")
    assert len(got) == 1
    # Postfix writes LF line endings into its Maildir.
    assert got[0].replace(b"\n", b"\r\n").endswith(raw), got[0][:800]
    assert b"(using TLSv1.3 with cipher" in got[0], got[0][:800]
    [line] = sender.delivery_lines("pfx.test", "delivered")
    assert line["mx"] == "mx.postfix.test" and line["tls"] == "TLSv1.3" and line["verified"] == "yes", line


def test_starttls_stripped_under_mta_sts_enforce_is_deferred_with_the_reason(world, make_sender):
    sender = make_sender()
    tag = "strip-sts"
    assert submit(sender, "bob@strip-sts.test", outbound("bob@strip-sts.test", tag)) == {}
    line = sender.wait_for_delivery_line("strip-sts.test", "deferred")
    assert line["mx"] == "mitm.receiver.test" and line["tls"] == "none", line
    assert line["policy"] == "mta-sts-enforce", line
    assert "starttls" in line["reason"].lower(), line
    assert world.sts.fetches.get("mta-sts.strip-sts.test", 0) >= 1
    # A retry (first_retry = 1 s) meets the same man in the middle: still deferred, never sent.
    sender.wait_for_delivery_line("strip-sts.test", "deferred", count=2)
    assert_nothing_stored(world, "bob@strip-sts.test", tag)
    assert not sender.delivery_lines("strip-sts.test", "delivered")
    entry = queue_entry_for(sender, "bob@strip-sts.test")
    text = str(entry).lower()
    assert "starttls" in text and "mta-sts" in text, entry


def test_starttls_stripped_without_policy_is_delivered_in_plaintext_and_logged(world, make_sender):
    sender = make_sender()
    tag = "strip-none"
    raw = outbound("bob@strip-none.test", tag)
    assert submit(sender, "bob@strip-none.test", raw) == {}
    wait_stored(world, "bob@strip-none.test", tag, sender=sender)
    [line] = sender.delivery_lines("strip-none.test", "delivered")
    assert line["tls"] == "none" and line["policy"] == "opportunistic", line
    [got] = world.stored_messages("bob@strip-none.test", tag)
    received = received_header(got)
    assert " with ESMTP " in received + " " and "ESMTPS" not in received, received


def test_certificate_name_mismatch_under_enforce_is_deferred(world, make_sender):
    sender = make_sender()
    tag = "mismatch-sts"
    assert submit(sender, "bob@mismatch-sts.test", outbound("bob@mismatch-sts.test", tag)) == {}
    line = sender.wait_for_delivery_line("mismatch-sts.test", "deferred")
    assert line["mx"] == "othername.receiver.test" and line["policy"] == "mta-sts-enforce", line
    assert line["verified"] == "no", line
    assert any(word in line["reason"].lower() for word in ("name", "host", "certificate")), line
    time.sleep(1.5)
    assert_nothing_stored(world, "bob@mismatch-sts.test", tag)


def test_certificate_name_mismatch_under_testing_is_delivered_and_recorded(world, make_sender):
    sender = make_sender()
    tag = "mismatch-testing"
    assert submit(sender, "bob@mismatch-testing.test", outbound("bob@mismatch-testing.test", tag)) == {}
    wait_stored(world, "bob@mismatch-testing.test", tag, sender=sender)
    [line] = sender.delivery_lines("mismatch-testing.test", "delivered")
    assert line["policy"] == "mta-sts-testing" and line["verified"] == "no", line
    assert line["tls"] == "TLSv1.3", line


def test_tls_rpt_report_carries_the_testing_mode_failure(world, make_sender):
    sender = make_sender()
    tag = "tlsrpt"
    assert submit(sender, "bob@mismatch-testing.test", outbound("bob@mismatch-testing.test", tag)) == {}
    wait_stored(world, "bob@mismatch-testing.test", tag, sender=sender)
    before = {mid for _, mid in world.stored(TLSRPT_RUA)}
    # Reports cover whole UTC days: the next day, at start, today's sessions are reported.
    sender.stop()
    sender.start_at_offset("+1d")

    def new_reports():
        return [uid for uid, mid in world.stored(TLSRPT_RUA) if mid not in before]
    [uid] = wait_until(new_reports, DELIVERY_TIMEOUT, "no TLS-RPT report reached " + TLSRPT_RUA,
                       diagnose=lambda: sender.log_text()[-4000:])
    raw = world.receiver.mail_cat(TLSRPT_RUA, uid)
    report_mail = email.message_from_bytes(raw)
    assert report_mail.get_content_type() == "multipart/report", report_mail["Content-Type"]
    assert report_mail.get_param("report-type") == "tlsrpt", report_mail["Content-Type"]
    assert report_mail["TLS-Required"].strip().lower() == "no"
    assert report_mail["TLS-Report-Domain"].strip() == "mismatch-testing.test"
    [attachment] = [p for p in report_mail.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    report = json.loads(gzip.decompress(attachment.get_payload(decode=True)))
    [policy] = [p for p in report["policies"] if p["policy"]["policy-domain"] == "mismatch-testing.test"]
    assert policy["policy"]["policy-type"] == "sts", policy
    assert policy["summary"]["total-failure-session-count"] >= 1, policy
    failures = policy["failure-details"]
    assert any(f["result-type"] == "certificate-host-mismatch"
               and f.get("receiving-mx-hostname") == "othername.receiver.test" for f in failures), failures


def test_dane_tlsa_match_delivers_and_tlsa_mismatch_is_deferred(world, make_sender):
    sender = make_sender()
    good, bad = "dane-good", "dane-bad"
    assert submit(sender, "bob@dane-good.test", outbound("bob@dane-good.test", good)) == {}
    assert submit(sender, "bob@dane-bad.test", outbound("bob@dane-bad.test", bad)) == {}
    wait_stored(world, "bob@dane-good.test", good, sender=sender)
    [line] = sender.delivery_lines("dane-good.test", "delivered")
    assert line["policy"] == "dane" and line["verified"] == "yes", line
    line = sender.wait_for_delivery_line("dane-bad.test", "deferred")
    assert line["policy"] == "dane" and line["verified"] == "no", line
    assert "tlsa" in line["reason"].lower(), line
    assert_nothing_stored(world, "bob@dane-bad.test", bad)


def test_a_bogus_tlsa_answer_for_a_secure_mx_defers_and_never_downgrades(world, make_sender):
    sender = make_sender()
    tag = "dane-bogus"
    assert submit(sender, "bob@dane-bogus.test", outbound("bob@dane-bogus.test", tag)) == {}
    line = sender.wait_for_delivery_line("dane-bogus.test", "deferred")
    assert "tlsa" in line["reason"].lower() or "bogus" in line["reason"].lower(), line
    sender.wait_for_delivery_line("dane-bogus.test", "deferred", count=2)
    assert_nothing_stored(world, "bob@dane-bogus.test", tag)
    assert not sender.delivery_lines("dane-bogus.test", "delivered")


def test_downgrade_memory_defers_a_domain_that_showed_verified_tls_until_reset(world, make_sender):
    sender = make_sender()
    proxy = world.memory_proxy
    proxy.set_mode("relay")
    first = outbound("bob@memory.test", "memory-1")
    assert submit(sender, "bob@memory.test", first) == {}
    wait_stored(world, "bob@memory.test", "memory-1", sender=sender)
    [line] = sender.delivery_lines("memory.test", "delivered")
    assert line["verified"] == "yes" and line["tls"] == "TLSv1.3", line
    listed = sender.cli("tls-memory", "list").stdout.decode()
    assert "memory.test" in listed, listed

    proxy.set_mode("strip")
    try:
        assert submit(sender, "bob@memory.test", outbound("bob@memory.test", "memory-2")) == {}
        line = sender.wait_for_delivery_line("memory.test", "deferred")
        assert line["policy"] == "seen-before" and line["tls"] == "none", line
        assert_nothing_stored(world, "bob@memory.test", "memory-2")

        sender.cli("tls-memory", "reset", "memory.test")
        assert "memory.test" not in sender.cli("tls-memory", "list").stdout.decode()
        wait_stored(world, "bob@memory.test", "memory-2", sender=sender)
        line = sender.delivery_lines("memory.test", "delivered")[-1]
        assert line["tls"] == "none" and line["policy"] == "opportunistic", line
    finally:
        proxy.set_mode("relay")


def test_a_4xx_then_250_delivers_exactly_once(world, make_sender):
    world.flaky.sessions = 0
    world.flaky.fail_data = 1
    sender = make_sender()
    tag = "flaky"
    assert submit(sender, "bob@flaky.test", outbound("bob@flaky.test", tag)) == {}
    line = sender.wait_for_delivery_line("flaky.test", "deferred")
    assert line["reply"].startswith("451"), line
    wait_stored(world, "bob@flaky.test", tag, sender=sender)
    time.sleep(2.5)  # two more first_retry periods: a duplicate would have arrived by now
    assert len(world.stored("bob@flaky.test", tag)) == 1
    assert len(sender.delivery_lines("flaky.test", "delivered")) == 1
    assert (1, "451 at end of DATA") in world.flaky.events
    assert queue_entries(sender) == []


def alice_inbox(sender):
    client = imaps_login(sender, ALICE, ALICE_PASSWORD)
    try:
        return imap_messages(client)
    finally:
        client.logout()


def wait_for_dsn(sender, timeout=DELIVERY_TIMEOUT):
    return wait_until(lambda: [m for m in alice_inbox(sender) if b"multipart/report" in m.lower()],
                      timeout, "no DSN in the sender's INBOX",
                      diagnose=lambda: f"{[l['line'] for l in sender.delivery_lines()]}\n{sender.log_text()[-3000:]}")


def test_a_5xx_bounces_with_a_dsn_in_the_senders_inbox_and_the_rest_is_delivered(world, make_sender):
    sender = make_sender()
    tag = "dsn"
    raw = outbound("bob@plain.test", tag)
    assert submit(sender, ["dsn@plain.test", "nobody@plain.test"], raw) == {}
    wait_stored(world, "dsn@plain.test", tag, sender=sender)
    [dsn] = wait_for_dsn(sender)
    parts = dsn_parts(dsn)
    [recipient] = parts["per_recipient"]
    assert recipient["final-recipient"].replace(" ", "").lower() == "rfc822;nobody@plain.test", recipient
    assert recipient["action"].lower() == "failed" and recipient["status"] == "5.1.1", recipient
    assert "550" in recipient.get("diagnostic-code", ""), recipient
    assert "mx.receiver.test" in recipient.get("remote-mta", "") + parts["human"], parts
    assert parts["per_message"].get("reporting-mta", "").replace(" ", "").lower() == "dns;mail.sender.test"
    assert parts["returned"] is not None and message_id_of(raw).encode() in parts["returned"].as_bytes()
    headers = email.message_from_bytes(dsn)
    assert headers["To"] and ALICE in headers["To"], headers["To"]
    line = sender.wait_for_delivery_line("plain.test", "bounced")
    assert line["reply"].startswith("550"), line
    assert queue_entries(sender) == []


def test_null_mx_bounces_at_once_with_5_1_10(world, make_sender):
    sender = make_sender()
    assert submit(sender, "bob@nullmx.test", outbound("bob@nullmx.test", "nullmx")) == {}
    [dsn] = wait_for_dsn(sender)
    [recipient] = dsn_parts(dsn)["per_recipient"]
    assert recipient["status"] == "5.1.10" and recipient["action"].lower() == "failed", recipient
    assert "bob@nullmx.test" in recipient["final-recipient"]


def test_requiretls_without_verifiable_tls_bounces_5_7_30(world, make_sender):
    sender = make_sender()
    raw = outbound("bob@strip-none.test", "requiretls")
    assert submit(sender, "bob@strip-none.test", raw, mail_options=["REQUIRETLS"]) == {}
    [dsn] = wait_for_dsn(sender)
    [recipient] = dsn_parts(dsn)["per_recipient"]
    assert recipient["status"] == "5.7.30", recipient
    assert_nothing_stored(world, "bob@strip-none.test", "requiretls")


def test_sigkill_mid_queue_loses_no_message(world, make_sender):
    # Queued with the worker off, so the kill surely lands mid-queue once it is on.
    sender = make_sender(delivery={"enabled": False, "per_destination": 1})
    tag = "sigkill"
    count = 300
    batch = [("bulk@plain.test", outbound("bulk@plain.test", tag, f"bulk {n}")) for n in range(count)]
    submit_many(sender, batch)
    assert len(queue_entries(sender)) == count
    assert world.stored("bulk@plain.test", tag) == []
    sender.stop()
    sender.set_config(delivery={"enabled": True})
    sender.start()
    wait_until(lambda: world.stored("bulk@plain.test", tag), DELIVERY_TIMEOUT, "nothing arrived",
               interval=0.05)
    sender.kill()
    at_kill = len(world.stored("bulk@plain.test", tag))
    assert at_kill < count, "all messages arrived before the kill: the test proved nothing"
    sender.start()
    wanted = {message_id_of(raw) for _, raw in batch}

    def distinct():
        return {mid for _, mid in world.stored("bulk@plain.test", tag)}
    wait_until(lambda: distinct() >= wanted, 90, "messages were lost after SIGKILL",
               interval=0.5, diagnose=lambda: f"{len(wanted - distinct())} missing; "
                                              f"queue: {len(queue_entries(sender))}")
    total = len(world.stored("bulk@plain.test", tag))
    print(f"SIGKILL after {at_kill} of {count} arrived; afterwards {total} stored "
          f"({total - count} duplicates)")
    assert total - count <= 1, "more than one duplicate: more than the message in flight was resent"
    wait_until(lambda: queue_entries(sender) == [], 10, "the queue did not empty")


def test_queue_list_retry_and_drop(world, make_sender):
    sender = make_sender(delivery={"first_retry": 3600, "max_retry": 3600})
    assert submit(sender, "bob@strip-sts.test", outbound("bob@strip-sts.test", "queue-admin")) == {}
    sender.wait_for_delivery_line("strip-sts.test", "deferred")
    entry = queue_entry_for(sender, "bob@strip-sts.test")
    assert entry["sender"] == ALICE and entry["attempts"] == 1, entry
    text = sender.cli("queue", "list").stdout.decode()
    assert str(entry["id"]) in text and "bob@strip-sts.test" in text, text

    sender.cli("queue", "retry", str(entry["id"]))
    sender.wait_for_delivery_line("strip-sts.test", "deferred", count=2, timeout=15)
    assert queue_entry_for(sender, "bob@strip-sts.test")["attempts"] == 2

    sender.cli("queue", "drop", str(entry["id"]))
    assert queue_entries(sender) == []
    assert sender.cli("queue", "drop", str(entry["id"]), check=False).returncode != 0
