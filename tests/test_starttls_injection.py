"""Plaintext injected behind STARTTLS (CVE-2011-0411) and SMTP smuggling (bare CR/LF
end-of-data lookalikes) get nowhere."""

import pytest

from smtp_wire import SmtpWire

SMUGGLING = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
}


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_plaintext_pipelined_after_starttls_is_discarded(server, listener):
    with SmtpWire(server.ports[listener]) as wire:
        wire.greeting()
        wire.ehlo()
        wire.send(b"STARTTLS\r\nNOOP\r\n")
        reply = wire.read_reply()
        assert reply.code == 220, reply
        assert wire.silence(0.3) == b"", "plaintext reply after the 220 to STARTTLS"
        wire.sock = server.tls_context().wrap_socket(wire.sock, server_hostname="localhost")
        injected = wire.silence(1.0)
        assert injected == b"", f"the server answered the injected NOOP: {injected!r}"
        ehlo = wire.ehlo()
        assert "STARTTLS" not in ehlo.keywords(), ehlo
        if listener == "submission":
            assert "AUTH" in ehlo.keywords(), f"session not restarted after TLS: {ehlo}"
        assert wire.command("NOOP").code == 250
        assert wire.command("QUIT").code == 221


@pytest.mark.parametrize("name", SMUGGLING)
def test_smuggled_end_of_data_is_rejected_and_nothing_is_stored(server, name):
    with SmtpWire(server.ports["smtp"]) as wire:
        wire.greeting()
        wire.ehlo()
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(b"From: sender@remote.test\r\nTo: bob@example.test\r\nSubject: outer\r\n\r\nouter body"
                  + SMUGGLING[name]
                  + b"MAIL FROM:<a@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
                  + b"\r\n.\r\n")
        reply = wire.read_reply()
        assert reply.code == 550, reply
        assert reply.lines[-1][4:].startswith("5.6.0"), reply
        # No replies to the would-be smuggled commands: the next reply answers our NOOP.
        assert wire.command("NOOP").code == 250
        assert wire.command("QUIT").code == 221
    assert server.mail_list("bob@example.test") == []
