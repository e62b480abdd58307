"""SMTP on 25, 587 and 465 as Python's smtplib sees it."""

import base64
import smtplib

import pytest

from conftest import PASSWORDS, received_header, split_trace
from mail import (header_section, header_values, login, message, new_message_id, smtp, smtp_ssl,
                  with_attachment)
from smtp_wire import SmtpWire

ALICE = "alice@example.test"
BOB = "bob@example.test"


def mx_over_starttls(server):
    client = smtp(server.ports["smtp"])
    client.ehlo("client.example.net")
    client.starttls(context=server.tls_context())
    client.ehlo("client.example.net")
    return client


def submission_over_starttls(server, user=ALICE, mechanism="PLAIN"):
    client = smtp(server.ports["submission"])
    client.ehlo("client.example.net")
    client.starttls(context=server.tls_context())
    client.ehlo("client.example.net")
    if user:
        code, _ = login(client, user, PASSWORDS[user], mechanism)
        assert code == 235
    return client


def only_message(server, address):
    entries = server.mail_list(address)
    assert len(entries) == 1, f"{address} has {entries}"
    return server.mail_cat(address, entries[0][0])


def test_mx_starttls_delivery_stores_trace_headers_then_exactly_the_sent_bytes(server):
    body = ("First line.\r\n"
            ".a line that starts with a dot\r\n"
            "..two dots\r\n"
            ".\r\n"
            " . \r\n"
            "trailing spaces   \r\n"
            "\r\n"
            "last line\r\n")
    sent = message(body=body)
    with mx_over_starttls(server) as client:
        assert client.sendmail("sender@remote.test", [BOB], sent) == {}
    stored = only_message(server, BOB)
    split_trace(stored, sent)
    received = received_header(stored)
    assert "with ESMTPS (TLSv1.3 TLS_" in received, received
    # RFC 5321 section 4.4: the EHLO name and the address it came from.
    assert received.startswith("Received: from client.example.net ([127.0.0.1])"), received


def test_mx_stores_8bit_utf8_message_sent_with_smtputf8_and_8bitmime(server):
    sent = message(subject="Grüße aus Köln ✉", body="Ünïcödé bödy: 日本語, emoji 📬\r\n",
                   extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                                  "Content-Transfer-Encoding: 8bit"])
    with mx_over_starttls(server) as client:
        assert client.has_extn("smtputf8"), client.esmtp_features
        assert client.has_extn("8bitmime"), client.esmtp_features
        refused = client.sendmail("sender@remote.test", [BOB], sent,
                                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    split_trace(only_message(server, BOB), sent)


def test_mx_stores_a_one_megabyte_attachment_exactly(server):
    sent = with_attachment(1024 * 1024)
    with mx_over_starttls(server) as client:
        assert client.sendmail("sender@remote.test", [BOB], sent) == {}
    stored = only_message(server, BOB)
    split_trace(stored, sent)
    assert server.mail_list(BOB)[0][1] == len(stored), "mail list size is not the stored size"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_submission_starttls_then_auth_sends_to_local_account(server, mechanism):
    sent = message(sender=ALICE, to=BOB, body=f"sent with AUTH {mechanism}\r\n")
    with submission_over_starttls(server, ALICE, mechanism) as client:
        assert mechanism in client.esmtp_features["auth"].upper().split()
        assert client.sendmail(ALICE, [BOB], sent) == {}
    stored = only_message(server, BOB)
    split_trace(stored, sent)
    received = received_header(stored)
    assert "with ESMTPSA" in received, received
    assert "TLSv1.3" in received, received


def test_submissions_implicit_tls_auth_sends_to_local_account(server):
    sent = message(sender=ALICE, to=BOB, body="over implicit TLS\r\n")
    with smtp_ssl(server.ports["submissions"], server.tls_context()) as client:
        client.ehlo("client.example.net")
        assert "auth" in client.esmtp_features, client.esmtp_features
        assert "starttls" not in client.esmtp_features, "STARTTLS offered inside TLS"
        code, _ = login(client, ALICE, PASSWORDS[ALICE], "PLAIN")
        assert code == 235
        assert client.sendmail(ALICE, [BOB], sent) == {}
    stored = only_message(server, BOB)
    split_trace(stored, sent)
    received = received_header(stored)
    assert "with ESMTPSA" in received, received
    assert "TLSv1.3" in received, received


def test_mx_rejects_unknown_local_user_with_550_5_1_1(server):
    with mx_over_starttls(server) as client:
        assert client.mail("sender@remote.test")[0] == 250
        code, text = client.rcpt("nobody@example.test")
        assert code == 550, text
        assert text.startswith(b"5.1.1"), text


def test_mx_is_not_an_open_relay_554_5_7_1(server):
    with mx_over_starttls(server) as client:
        assert client.mail("sender@remote.test")[0] == 250
        code, text = client.rcpt("someone@elsewhere.test")
        assert code == 554, text
        assert text.startswith(b"5.7.1"), text
    assert server.queue_list() == []


def test_mx_does_not_offer_auth_before_or_after_starttls(server):
    with smtp(server.ports["smtp"]) as client:
        client.ehlo("client.example.net")
        assert client.has_extn("starttls"), client.esmtp_features
        assert not client.has_extn("auth"), client.esmtp_features
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert not client.has_extn("auth"), client.esmtp_features
        assert not client.has_extn("starttls"), "STARTTLS offered twice"


def test_submission_offers_auth_only_after_starttls(server):
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        assert client.has_extn("starttls"), client.esmtp_features
        assert not client.has_extn("auth"), client.esmtp_features
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert "PLAIN" in client.esmtp_features.get("auth", "").upper().split(), client.esmtp_features


def test_submission_auth_in_plaintext_gets_538(server):
    credentials = base64.b64encode(f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode()).decode()
    with SmtpWire(server.ports["submission"]) as wire:
        wire.greeting()
        wire.ehlo()
        reply = wire.command(f"AUTH PLAIN {credentials}")
        assert reply.code == 538, reply
        reply = wire.command("AUTH LOGIN")
        assert reply.code == 538, reply
        reply = wire.command("MAIL FROM:<alice@example.test>")
        assert reply.code == 530, f"unauthenticated MAIL FROM on 587 not refused with 530: {reply}"


def test_submission_refuses_sender_the_account_does_not_own_with_553(server):
    with submission_over_starttls(server, ALICE) as client:
        code, text = client.mail(BOB)
        assert code == 553, text
        client.rset()
        code, text = client.mail("alice@elsewhere.test")
        assert code == 553, text
        client.rset()
        assert client.mail(ALICE)[0] == 250


def test_submission_to_remote_recipient_creates_queue_entry(make_server):
    # An unreachable resolver keeps the entry queued (a temporary failure), not bounced.
    server = make_server({"dns": {"nameservers": ["127.0.0.1:9"]}})
    sent = message(sender=ALICE, to="carol@remote.test")
    with submission_over_starttls(server, ALICE) as client:
        assert client.sendmail(ALICE, ["carol@remote.test", "dave@remote.test"], sent) == {}
    entries = server.queue_list()
    assert len(entries) == 1, entries
    _, sender, recipients, size = entries[0]
    assert sender == ALICE
    assert sorted(recipients.split(",")) == ["carol@remote.test", "dave@remote.test"]
    assert int(size) >= len(sent)
    assert server.mail_list(BOB) == []


def test_submission_adds_message_id_and_date_when_missing(server):
    sent = message(sender=ALICE, to=BOB, date=False, message_id=False, body="no id, no date\r\n")
    with submission_over_starttls(server, ALICE) as client:
        assert client.sendmail(ALICE, [BOB], sent) == {}
    stored = only_message(server, BOB)
    assert len(header_values(stored, "Message-ID")) == 1, header_section(stored)
    message_id = header_values(stored, "Message-ID")[0]
    assert message_id.startswith("<") and message_id.endswith(">") and "@" in message_id
    assert len(header_values(stored, "Date")) == 1, header_section(stored)
    for line in header_section(sent).split(b"\r\n"):
        assert line in header_section(stored), f"sent header line {line!r} not kept"
    assert stored.split(b"\r\n\r\n", 1)[1] == sent.split(b"\r\n\r\n", 1)[1]
    assert server.mail_list(BOB)[0][2] == message_id


def test_mx_adds_no_message_id_or_date(server):
    sent = message(date=False, message_id=False, body="relayed as is\r\n")
    with mx_over_starttls(server) as client:
        assert client.sendmail("sender@remote.test", [BOB], sent) == {}
    split_trace(only_message(server, BOB), sent)
    assert server.mail_list(BOB)[0][2] is None, "mail list shows a Message-ID the message lacks"


def test_submission_keeps_existing_message_id_and_date(server):
    message_id = new_message_id("kept")
    sent = message(sender=ALICE, to=BOB, message_id=message_id)
    with submission_over_starttls(server, ALICE) as client:
        assert client.sendmail(ALICE, [BOB], sent) == {}
    stored = only_message(server, BOB)
    split_trace(stored, sent)
    assert server.mail_list(BOB)[0][2] == message_id


def test_bdat_chunks_are_stored_exactly(server):
    first = (message(body="") + b"chunk one\r\n.\r\n.leading dot kept as is\r\n..\r\n")
    second = b"chunk two, last\r\n"
    with SmtpWire(server.ports["smtp"]) as wire:
        wire.greeting()
        ehlo = wire.ehlo()
        assert "CHUNKING" in ehlo.keywords(), ehlo
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        wire.send(f"BDAT {len(first)}\r\n".encode() + first)
        reply = wire.read_reply()
        assert reply.code == 250, reply
        wire.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
        reply = wire.read_reply()
        assert reply.code == 250, reply
        assert wire.command("QUIT").code == 221
    stored = only_message(server, BOB)
    split_trace(stored, first + second)
    received = received_header(stored)
    assert "with ESMTP " in received + " " and "ESMTPS" not in received, received


def test_submission_wrong_password_gets_535(server):
    with submission_over_starttls(server, None) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            login(client, ALICE, "wrong password", "PLAIN")
        assert failure.value.smtp_code == 535
