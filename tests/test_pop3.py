"""POP3 on 110 (STLS) and 995 (implicit TLS) as Python's poplib sees it: what it reads is
exactly what was stored, and the maildrop behaves as RFC 1939 says."""

import poplib
import time

import pytest

from conftest import PASSWORDS, split_trace
from mail import message
from mailread import (BOB, DOT_LEADING_BODY, READING_CONFIG, SAMPLES, Pop3Wire, deliver,
                      only_stored, pop3_retr, pop3_sizes, pop3_stls, pop3_uidls, pop3s, stored,
                      submit)

TRANSPORTS = {"pop3s": pop3s, "pop3-stls": pop3_stls}


@pytest.fixture
def server(make_server):
    return make_server(config=READING_CONFIG)


def deliver_numbered(server, count, to=BOB):
    sent = [message(to=to, subject=f"message {i}", body=f"Body of message {i}.\r\n" * (i + 1))
            for i in range(count)]
    for data in sent:
        deliver(server, data, to=to)
    return sent


def log_in_retrying_while_in_use(server, timeout=5):
    """A new POP3S session, retrying while the server still holds the lock of a session
    whose connection just dropped."""
    deadline = time.monotonic() + timeout
    while True:
        client = pop3s(server, login=False)
        client.user(BOB)
        try:
            client.pass_(PASSWORDS[BOB])
            return client
        except poplib.error_proto as e:
            client.close()
            if b"IN-USE" not in e.args[0] or time.monotonic() > deadline:
                raise


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retr_returns_exactly_the_stored_bytes(server, transport, sample):
    sent = SAMPLES[sample]()
    deliver(server, sent)
    on_disk = only_stored(server, BOB)
    split_trace(on_disk, sent)
    client = TRANSPORTS[transport](server)
    try:
        assert client.stat() == (1, len(on_disk))
        assert pop3_retr(client, 1) == on_disk
    finally:
        client.quit()


def test_message_sent_through_submission_reads_back_exactly(server):
    sent = message(sender="alice@example.test", to=BOB, subject="via submission", body=DOT_LEADING_BODY)
    submit(server, sent)
    on_disk = only_stored(server, BOB)
    split_trace(on_disk, sent)
    client = pop3_stls(server)
    try:
        assert pop3_retr(client, 1) == on_disk
    finally:
        client.quit()


def test_retr_dot_stuffs_on_the_wire_and_ends_with_a_lone_dot(server):
    sent = SAMPLES["dot-leading-lines"]()
    deliver(server, sent)
    on_disk = only_stored(server, BOB)
    with Pop3Wire(server.ports["pop3s"], server.tls_context()) as wire:
        assert wire.read_line().startswith(b"+OK")
        assert wire.command(f"USER {BOB}").startswith(b"+OK")
        assert wire.command(f"PASS {PASSWORDS[BOB]}").startswith(b"+OK")
        assert wire.command("RETR 1").startswith(b"+OK")
        raw = wire.multiline()
        stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                           for line in on_disk[:-2].split(b"\r\n"))
        assert raw == stuffed
        assert b"\r\n..a line that starts with a dot\r\n...two dots\r\n..\r\n" in raw
        assert wire.command("QUIT").startswith(b"+OK")


def test_capa_before_stls_offers_stls_but_neither_user_nor_sasl(server):
    with Pop3Wire(server.ports["pop3"]) as wire:
        assert wire.read_line().startswith(b"+OK")
        assert wire.command("CAPA").startswith(b"+OK")
        capa = wire.multiline().split(b"\r\n")
        assert b"STLS" in capa, capa
        assert b"USER" not in capa, capa
        assert not any(line.startswith(b"SASL") for line in capa), capa


@pytest.mark.parametrize("attempt", [
    ["USER bob@example.test"],
    ["USER bob@example.test", "PASS bob-secret-2"],
    ["AUTH PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iLXNlY3JldC0y"],
    ["AUTH PLAIN"],
], ids=["user", "user-pass", "auth-plain-initial-response", "auth-plain"])
def test_logins_before_stls_are_refused(server, attempt):
    with Pop3Wire(server.ports["pop3"]) as wire:
        assert wire.read_line().startswith(b"+OK")
        for line in attempt:
            reply = wire.command(line)
            assert reply.startswith(b"-ERR"), f"{line!r} answered {reply!r} before STLS"
        assert wire.command("STAT").startswith(b"-ERR"), "logged in without TLS"
        assert wire.command("STLS").startswith(b"+OK")
        wire.starttls(server.tls_context())
        assert wire.command(f"USER {BOB}").startswith(b"+OK")
        assert wire.command(f"PASS {PASSWORDS[BOB]}").startswith(b"+OK")
        assert wire.command("STAT").startswith(b"+OK 0 0")
        assert wire.command("QUIT").startswith(b"+OK")


def test_after_stls_capa_offers_user_and_sasl_plain_and_user_pass_works(server):
    deliver(server, message())
    client = pop3_stls(server, login=False)
    try:
        capa = client.capa()
        assert "USER" in capa, capa
        assert "PLAIN" in capa.get("SASL", []), capa
        assert "STLS" not in capa, capa
        assert client.user(BOB).startswith(b"+OK")
        assert client.pass_(PASSWORDS[BOB]).startswith(b"+OK")
        assert client.stat()[0] == 1
    finally:
        client.quit()


def test_dele_takes_effect_only_at_quit(server):
    deliver_numbered(server, 3)
    before = server.mail_list(BOB)
    client = pop3s(server)
    assert client.dele(2).startswith(b"+OK")
    assert client.stat()[0] == 2, "a deleted message is still counted"
    with pytest.raises(poplib.error_proto):
        client.retr(2)
    assert server.mail_list(BOB) == before, "DELE removed the message before QUIT"
    assert client.quit().startswith(b"+OK")
    assert server.mail_list(BOB) == [before[0], before[2]]


def test_rset_undoes_dele(server):
    deliver_numbered(server, 2)
    before = server.mail_list(BOB)
    client = pop3s(server)
    client.dele(1)
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 2
    client.quit()
    assert server.mail_list(BOB) == before


def test_dropped_connection_deletes_nothing(server):
    deliver_numbered(server, 3)
    before = server.mail_list(BOB)
    with Pop3Wire(server.ports["pop3s"], server.tls_context()) as wire:
        assert wire.read_line().startswith(b"+OK")
        assert wire.command(f"USER {BOB}").startswith(b"+OK")
        assert wire.command(f"PASS {PASSWORDS[BOB]}").startswith(b"+OK")
        for number in (1, 2, 3):
            assert wire.command(f"DELE {number}").startswith(b"+OK")
    client = log_in_retrying_while_in_use(server)
    try:
        assert client.stat()[0] == 3
    finally:
        client.quit()
    assert server.mail_list(BOB) == before


def test_second_concurrent_session_for_the_same_maildrop_is_refused_in_use(server):
    deliver_numbered(server, 1)
    first = pop3s(server)
    try:
        for connect in (pop3s, pop3_stls):
            second = connect(server, login=False)
            second.user(BOB)
            with pytest.raises(poplib.error_proto) as refused:
                second.pass_(PASSWORDS[BOB])
            assert refused.value.args[0].startswith(b"-ERR [IN-USE]"), refused.value
            second.close()
        assert first.stat()[0] == 1, "the first session suffered from the refused one"
    finally:
        first.quit()
    again = pop3s(server)
    assert again.stat()[0] == 1
    again.quit()


def test_uidl_is_stable_across_sessions(server):
    deliver_numbered(server, 3)
    client = pop3s(server)
    first = pop3_uidls(client)
    client.quit()
    assert len(set(first.values())) == 3, first
    for uid in first.values():
        assert 1 <= len(uid) <= 70 and all(0x21 <= b <= 0x7e for b in uid), uid

    client = pop3s(server)
    assert pop3_uidls(client) == first
    assert client.uidl(2).split()[1:] == [b"2", first[2]]
    client.dele(1)
    client.quit()

    deliver_numbered(server, 1)
    client = pop3s(server)
    now = pop3_uidls(client)
    client.quit()
    assert now[1] == first[2] and now[2] == first[3], (first, now)
    assert now[3] not in first.values(), "a new message got an old unique id"


def test_list_sizes_equal_the_octets_retr_returns(server):
    for make in SAMPLES.values():
        deliver(server, make())
    on_disk = dict(stored(server, BOB))
    client = pop3s(server)
    try:
        sizes = pop3_sizes(client)
        assert len(sizes) == 3
        count, total = client.stat()
        assert (count, total) == (3, sum(sizes.values()))
        for number, size in sizes.items():
            data = pop3_retr(client, number)
            assert len(data) == size, f"LIST {number} says {size}, RETR sent {len(data)}"
            assert int(client.list(number).split()[2]) == size
        assert sorted(sizes.values()) == sorted(len(m) for m in on_disk.values())
    finally:
        client.quit()


def test_top_returns_the_header_section_and_the_first_body_lines(server):
    sent = message(body="one\r\n.two\r\nthree\r\nfour\r\n")
    deliver(server, sent)
    on_disk = only_stored(server, BOB)
    head, body = on_disk.split(b"\r\n\r\n", 1)
    client = pop3s(server)
    try:
        _, lines, _ = client.top(1, 2)
        assert b"".join(line + b"\r\n" for line in lines) == head + b"\r\n\r\none\r\n.two\r\n"
        _, lines, _ = client.top(1, 0)
        assert b"".join(line + b"\r\n" for line in lines) == head + b"\r\n\r\n"
    finally:
        client.quit()


def test_wrong_password_is_refused_and_the_session_goes_on(server):
    client = pop3s(server, login=False)
    try:
        client.user(BOB)
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("not the password")
        assert refused.value.args[0].startswith(b"-ERR"), refused.value
        client.user(BOB)
        assert client.pass_(PASSWORDS[BOB]).startswith(b"+OK")
    finally:
        client.quit()
