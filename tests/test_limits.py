"""Configured limits are enforced with the replies RFC 5321 and its extensions specify."""

import base64
import smtplib
import socket
import time

import pytest

from conftest import PASSWORDS
from mail import login, message, smtp
from smtp_wire import Closed, SmtpWire

ALICE = "alice@example.test"


def mx(server):
    wire = SmtpWire(server.ports["smtp"])
    wire.greeting()
    wire.ehlo()
    return wire


def test_command_line_over_512_octets_gets_500_and_session_continues(server):
    with mx(server) as wire:
        reply = wire.command("NOOP " + "x" * 600)
        assert reply.code == 500, reply
        assert wire.command("NOOP").code == 250
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250


def test_text_line_over_1000_octets_in_data_gets_500_5_5_6(server):
    with mx(server) as wire:
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(message(body="a" * 1200 + "\r\nshort line\r\n") + b".\r\n")
        reply = wire.read_reply()
        assert reply.code == 500, reply
        assert reply.lines[-1][4:].startswith("5.5.6"), reply
        assert wire.command("NOOP").code == 250
    assert server.mail_list("bob@example.test") == []


def test_message_over_max_message_size_gets_552_5_3_4(make_server):
    server = make_server({"smtp": {"max_message_size": 10000}})
    with mx(server) as wire:
        ehlo = wire.command("EHLO client.example.net")
        assert ehlo.extension("SIZE") == ["10000"], ehlo
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(message(body="0123456789abcdef\r\n" * 1000) + b".\r\n")
        reply = wire.read_reply()
        assert reply.code == 552, reply
        assert reply.lines[-1][4:].startswith("5.3.4"), reply
        assert wire.command("RSET").code == 250
        reply = wire.command("MAIL FROM:<sender@remote.test> SIZE=10001")
        assert reply.code == 552, reply
        assert wire.command("MAIL FROM:<sender@remote.test> SIZE=9000").code == 250
    assert server.mail_list("bob@example.test") == []


def test_recipient_101_gets_452(server):
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert login(client, ALICE, PASSWORDS[ALICE])[0] == 235
        assert client.mail(ALICE)[0] == 250
        for i in range(100):
            code, text = client.rcpt(f"rcpt{i}@remote.test")
            assert code == 250, (i, code, text)
        code, text = client.rcpt("rcpt100@remote.test")
        assert code == 452, text


def test_max_errors_closes_session_with_421(make_server):
    server = make_server({"smtp": {"max_errors": 3}})
    with mx(server) as wire:
        codes = []
        try:
            for _ in range(5):
                codes.append(wire.command("BOGUS").code)
                if codes[-1] == 421:
                    break
        except Closed:
            pytest.fail(f"closed without a 421; replies were {codes}")
        assert codes[-1] == 421, codes
        assert len(codes) <= 4, codes
        assert wire.read_until_closed() == b""


def test_idle_session_gets_421_and_is_closed(make_server):
    server = make_server({"smtp": {"idle_timeout": 1}})
    with SmtpWire(server.ports["smtp"], timeout=10) as wire:
        wire.greeting()
        reply = wire.read_reply()
        assert reply.code == 421, reply
        assert wire.read_until_closed() == b""


def test_third_connection_from_one_ip_gets_421(make_server):
    server = make_server({"limits": {"max_connections_per_ip": 2}})
    first, second = SmtpWire(server.ports["smtp"]), SmtpWire(server.ports["submission"])
    try:
        first.greeting()
        second.greeting()
        with SmtpWire(server.ports["smtp"]) as third:
            reply = third.read_reply()
            assert reply.code == 421, reply
            assert third.read_until_closed() == b""
    finally:
        first.close()
        second.close()
    # Places are given back when sessions end (the server notices the close first).
    deadline = time.monotonic() + 5
    while True:
        with SmtpWire(server.ports["smtp"]) as again:
            if again.read_reply().code == 220:
                break
        assert time.monotonic() < deadline, "connections still refused after the first two closed"
        time.sleep(0.05)


def auth_plain_reply(server, password):
    """The reply to AUTH PLAIN on a fresh 587 session (421 if turned away earlier)."""
    with SmtpWire(server.ports["submission"]) as wire:
        greeting = wire.read_reply()
        if greeting.code == 421:
            return greeting
        wire.ehlo()
        reply = wire.command("STARTTLS")
        if reply.code != 220:
            return reply
        wire.sock = server.tls_context().wrap_socket(wire.sock, server_hostname="localhost")
        wire.ehlo()
        token = base64.b64encode(f"\0{ALICE}\0{password}".encode()).decode()
        try:
            return wire.command(f"AUTH PLAIN {token}")
        except (Closed, ConnectionResetError):
            pytest.fail("connection closed without a reply to AUTH")


def test_login_locked_out_after_auth_max_failures_even_with_right_password(make_server):
    server = make_server({"limits": {"auth_max_failures": 3}})
    for _ in range(3):
        reply = auth_plain_reply(server, "wrong password")
        assert reply.code == 535, reply
    reply = auth_plain_reply(server, PASSWORDS[ALICE])
    assert reply.code in (454, 421), f"right password after 3 failures: {reply}"


def test_auth_failures_in_one_session_then_right_password_is_refused(make_server):
    server = make_server({"limits": {"auth_max_failures": 3}})
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        for _ in range(3):
            with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
                login(client, ALICE, "wrong password")
            assert failure.value.smtp_code == 535
        try:
            token = base64.b64encode(f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode()).decode()
            code, text = client.docmd("AUTH", "PLAIN " + token)
        except (smtplib.SMTPServerDisconnected, socket.error):
            code, text = 421, b"disconnected"
        assert code in (454, 421), (code, text)
