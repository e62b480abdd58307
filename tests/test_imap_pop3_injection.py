"""Plaintext pipelined behind IMAP STARTTLS and POP3 STLS (CVE-2011-0411) gets no answer,
and ALPN on the IMAP and POP3 ports must name that port's protocol (ALPACA)."""

import pytest

import s_client
from conftest import PASSWORDS
from mailread import BOB, READING_CONFIG, ImapWire, Pop3Wire, status


@pytest.fixture
def server(make_server):
    return make_server(config=READING_CONFIG)


def test_imap_plaintext_pipelined_after_starttls_is_discarded(server):
    with ImapWire(server.ports["imap"]) as wire:
        wire.greeting()
        wire.send(b"a STARTTLS\r\nb NOOP\r\n")
        untagged, done = wire.until_tagged("a")
        assert status(done) == "OK", done
        assert wire.silence(0.3) == b"", "plaintext after the OK to STARTTLS"
        wire.starttls(server.tls_context())
        injected = wire.silence(1.0)
        assert injected == b"", f"the server answered the injected NOOP: {injected!r}"
        untagged, done = wire.command("c", "NOOP")
        assert status(done) == "OK", done
        assert not any(line.startswith(b"b ") for line in untagged), untagged
        untagged, done = wire.command("d", f'LOGIN {BOB} "{PASSWORDS[BOB]}"')
        assert status(done) == "OK", done
        _, done = wire.command("e", "LOGOUT")
        assert status(done) == "OK", done


def test_imap_login_pipelined_after_starttls_is_not_carried_into_tls(server):
    with ImapWire(server.ports["imap"]) as wire:
        wire.greeting()
        wire.send(f'a STARTTLS\r\nb LOGIN {BOB} "{PASSWORDS[BOB]}"\r\n'.encode())
        _, done = wire.until_tagged("a")
        assert status(done) == "OK", done
        wire.starttls(server.tls_context())
        assert wire.silence(1.0) == b""
        _, done = wire.command("c", "SELECT INBOX")
        assert status(done) in ("NO", "BAD"), f"the injected LOGIN took effect: {done!r}"


def test_pop3_plaintext_pipelined_after_stls_is_discarded(server):
    with Pop3Wire(server.ports["pop3"]) as wire:
        assert wire.read_line().startswith(b"+OK")
        wire.send(b"STLS\r\nNOOP\r\n")
        assert wire.read_line().startswith(b"+OK")
        assert wire.silence(0.3) == b"", "plaintext after the +OK to STLS"
        wire.starttls(server.tls_context())
        injected = wire.silence(1.0)
        assert injected == b"", f"the server answered the injected NOOP: {injected!r}"
        assert wire.command("CAPA").startswith(b"+OK")
        capa = wire.multiline().split(b"\r\n")
        assert b"USER" in capa and b"STLS" not in capa, capa
        assert wire.command(f"USER {BOB}").startswith(b"+OK")
        assert wire.command(f"PASS {PASSWORDS[BOB]}").startswith(b"+OK")
        assert wire.command("QUIT").startswith(b"+OK")


def test_pop3_user_pipelined_after_stls_is_not_carried_into_tls(server):
    with Pop3Wire(server.ports["pop3"]) as wire:
        assert wire.read_line().startswith(b"+OK")
        wire.send(f"STLS\r\nUSER {BOB}\r\n".encode())
        assert wire.read_line().startswith(b"+OK")
        wire.starttls(server.tls_context())
        assert wire.silence(1.0) == b""
        reply = wire.command(f"PASS {PASSWORDS[BOB]}")
        assert reply.startswith(b"-ERR"), f"USER from before TLS was remembered: {reply!r}"


# (listener, protocol, the s_client -starttls name or None for implicit TLS)
PORTS = [("imaps", "imap", None), ("imap", "imap", "imap"),
         ("pop3s", "pop3", None), ("pop3", "pop3", "pop3")]


@pytest.mark.parametrize("listener,protocol,starttls", PORTS, ids=[p[0] for p in PORTS])
def test_alpn_for_another_protocol_is_refused_and_its_own_accepted(server, listener, protocol,
                                                                  starttls):
    extra = ("-starttls", starttls) if starttls else ()
    port = server.ports[listener]
    for wrong in ("smtp", "http/1.1"):
        run = s_client.run(port, *extra, "-alpn", wrong, starttls=False, ca=server.ca_path,
                           input=b"")
        assert not run.ok, f"ALPN {wrong} accepted on {listener}: {run}"
        assert "Didn't find STARTTLS" not in run.output, f"STARTTLS never happened: {run}"
        assert "alert no application protocol" in run.output, (
            f"ALPN {wrong} on {listener} not refused with the no_application_protocol alert: {run}")
    right = s_client.run(port, *extra, "-alpn", protocol, starttls=False, ca=server.ca_path,
                         input=b"")
    assert right.ok, right
    assert right.verified(), right
    assert f"ALPN protocol: {protocol}" in right.output, right
    plain = s_client.run(port, *extra, starttls=False, ca=server.ca_path, input=b"")
    assert plain.ok and plain.verified(), f"no ALPN at all must be fine: {plain}"
