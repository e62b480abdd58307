"""IMAP on 143 (STARTTLS) and 993 (implicit TLS) as Python's imaplib and a raw wire see it:
what is read is exactly what was stored, mailboxes and flags behave as RFC 9051 says, IDLE
announces new mail at once, and concurrent sessions keep their sequence numbers."""

import imaplib
import queue
import re
import threading
import time

import pytest

from conftest import PASSWORDS, split_trace
from mail import message, smtp
from mailread import (ALICE, BOB, DOT_LEADING_BODY, READING_CONFIG, SAMPLES, ImapWire,
                      capabilities, deliver, fetch_literal, flatten, imap_starttls, imaps,
                      list_mailboxes, ok, only_stored, response_code, status, stored, submit,
                      uid_fetch_body)

TRANSPORTS = {"imaps": imaps, "imap-starttls": imap_starttls}
EXTENSIONS = {"IMAP4REV2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "CONDSTORE", "QRESYNC",
              "LITERAL+", "ENABLE", "NAMESPACE", "UNSELECT", "ESEARCH", "LIST-EXTENDED",
              "LIST-STATUS", "STATUS=SIZE", "ID", "SASL-IR"}
SPECIAL_USE = {"Sent": "\\sent", "Drafts": "\\drafts", "Trash": "\\trash", "Junk": "\\junk",
               "Archive": "\\archive"}


@pytest.fixture
def server(make_server):
    return make_server(config=READING_CONFIG)


def assert_has_extensions(caps):
    missing = EXTENSIONS - caps
    assert not missing, f"capabilities lack {sorted(missing)}: {sorted(caps)}"
    assert any(c == "APPENDLIMIT" or c.startswith("APPENDLIMIT=") for c in caps), sorted(caps)


def wire_login(server, user=BOB, select=None, listener="imaps") -> ImapWire:
    """A raw session logged in over implicit TLS, or over STARTTLS on `imap`."""
    if listener == "imaps":
        wire = ImapWire(server.ports["imaps"], server.tls_context())
        wire.greeting()
    else:
        wire = ImapWire(server.ports["imap"])
        wire.greeting()
        _, done = wire.command("s1", "STARTTLS")
        assert status(done) == "OK", done
        wire.starttls(server.tls_context())
    _, done = wire.command("l1", f'LOGIN {user} "{PASSWORDS[user]}"')
    assert status(done) == "OK", done
    if select:
        _, done = wire.command("l2", f"SELECT {select}")
        assert status(done) == "OK", done
    return wire


def deliver_numbered(server, count, to=BOB):
    for i in range(count):
        deliver(server, message(to=to, subject=f"message {i + 1}", body=f"Body {i + 1}.\r\n"), to=to)
    return [uid for uid, _, _ in server.mail_list(to)]


def fetch_items(client, what, items):
    """{sequence number: response bytes} for `FETCH what items` (literals inline)."""
    out = {}
    number = None
    for part in ok(client.fetch(what, items)):
        text = part[0] + b"\r\n" + part[1] if isinstance(part, tuple) else part
        start = re.match(rb"(\d+) \(", text)
        if start:
            number = int(start.group(1))
        else:
            assert number is not None, f"FETCH data does not start with a message number: {text[:200]!r}"
        out[number] = out.get(number, b"") + text
    return out


# ---- reading exactly what was stored ----

@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_uid_fetch_body_peek_returns_exactly_the_stored_bytes(server, transport, sample):
    sent = SAMPLES[sample]()
    deliver(server, sent)
    on_disk = only_stored(server, BOB)
    split_trace(on_disk, sent)
    uid = server.mail_list(BOB)[0][0]
    client = TRANSPORTS[transport](server)
    try:
        assert ok(client.select("INBOX")) == [b"1"]
        assert uid_fetch_body(client, uid) == on_disk
        flags = flatten(ok(client.uid("FETCH", str(uid), "(FLAGS)")))
        assert b"\\Seen" not in flags, f"BODY.PEEK[] set \\Seen: {flags!r}"
    finally:
        client.logout()


def test_message_sent_through_submission_reads_back_exactly(server):
    sent = message(sender=ALICE, to=BOB, subject="via submission", body=DOT_LEADING_BODY)
    submit(server, sent)
    on_disk = only_stored(server, BOB)
    split_trace(on_disk, sent)
    client = imap_starttls(server)
    try:
        client.select("INBOX", readonly=True)
        assert fetch_literal(ok(client.fetch("1", "(BODY[])"))) == on_disk
    finally:
        client.logout()


def test_fetch_body_without_peek_sets_seen(server):
    deliver(server, message())
    client = imaps(server)
    try:
        client.select("INBOX")
        data = ok(client.fetch("1", "(BODY[])"))
        assert fetch_literal(data) == only_stored(server, BOB)
        assert b"\\Seen" in flatten(ok(client.fetch("1", "(FLAGS)")))
    finally:
        client.logout()


# ---- STARTTLS, LOGINDISABLED, capabilities ----

def test_before_starttls_login_is_disabled_and_after_it_login_works(server):
    with ImapWire(server.ports["imap"]) as wire:
        greeting = wire.greeting()
        assert not greeting.upper().startswith(b"* PREAUTH"), greeting
        untagged, done = wire.command("a1", "CAPABILITY")
        assert status(done) == "OK", done
        caps = capabilities(next(line for line in untagged if line.upper().startswith(b"* CAPABILITY")))
        assert {"STARTTLS", "LOGINDISABLED"} <= caps, caps
        assert not any(c.startswith("AUTH=") for c in caps), f"SASL offered before TLS: {caps}"

        _, done = wire.command("a2", f'LOGIN {BOB} "{PASSWORDS[BOB]}"')
        assert status(done) in ("NO", "BAD"), f"LOGIN before STARTTLS: {done!r}"
        _, done = wire.command("a3", "AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iLXNlY3JldC0y")
        assert status(done) in ("NO", "BAD"), f"AUTHENTICATE before STARTTLS: {done!r}"
        _, done = wire.command("a4", "SELECT INBOX")
        assert status(done) in ("NO", "BAD"), f"SELECT without login: {done!r}"

        _, done = wire.command("a5", "STARTTLS")
        assert status(done) == "OK", done
        wire.starttls(server.tls_context())
        assert wire.silence(0.3) == b"", "a greeting or other response after STARTTLS"
        untagged, done = wire.command("b1", "CAPABILITY")
        caps = capabilities(next(line for line in untagged if line.upper().startswith(b"* CAPABILITY")))
        assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps, caps
        assert "AUTH=PLAIN" in caps, caps
        assert_has_extensions(caps)
        _, done = wire.command("b2", f'LOGIN {BOB} "{PASSWORDS[BOB]}"')
        assert status(done) == "OK", done
        _, done = wire.command("b3", "SELECT INBOX")
        assert status(done) == "OK", done


@pytest.mark.parametrize("listener", ["imap", "imaps"])
def test_greeting_is_ok_never_preauth(server, listener):
    context = server.tls_context() if listener == "imaps" else None
    with ImapWire(server.ports[listener], context) as wire:
        greeting = wire.greeting()
        assert greeting.startswith(b"* OK "), greeting
        caps = capabilities(greeting) if b"[CAPABILITY" in greeting.upper() else None
        if caps is not None:
            assert "IMAP4REV2" in caps, caps
            assert ("LOGINDISABLED" in caps) == (listener == "imap"), caps


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_capabilities_under_tls_include_every_advertised_extension(server, transport):
    client = TRANSPORTS[transport](server, login=False)
    try:
        before = {c.upper() for c in ok(client.capability())[0].decode().split()}
        assert_has_extensions(before)
        assert "AUTH=PLAIN" in before and "LOGINDISABLED" not in before, before
        client.login(BOB, PASSWORDS[BOB])
        after = {c.upper() for c in ok(client.capability())[0].decode().split()}
        assert_has_extensions(after)
    finally:
        client.logout()


def test_sasl_plain_with_initial_response_logs_in(server):
    with ImapWire(server.ports["imaps"], server.tls_context()) as wire:
        wire.greeting()
        _, done = wire.command("a1", "AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iLXNlY3JldC0y")
        assert status(done) == "OK", done
        _, done = wire.command("a2", "SELECT INBOX")
        assert status(done) == "OK", done


def test_wrong_password_gets_no_and_the_session_goes_on(server):
    with ImapWire(server.ports["imaps"], server.tls_context()) as wire:
        wire.greeting()
        _, done = wire.command("a1", f'LOGIN {BOB} "wrong password"')
        assert status(done) == "NO", done
        _, done = wire.command("a2", f'LOGIN {BOB} "{PASSWORDS[BOB]}"')
        assert status(done) == "OK", done


# ---- mailboxes ----

def test_list_shows_inbox_and_the_special_use_mailboxes(server):
    client = imaps(server)
    try:
        boxes = list_mailboxes(client)
        assert "INBOX" in boxes, boxes
        for name, attribute in SPECIAL_USE.items():
            assert name in boxes, f"{name} missing from LIST: {boxes}"
            assert attribute in boxes[name], f"{name} lacks {attribute}: {boxes[name]}"
    finally:
        client.logout()


def test_select_reports_exists_uidvalidity_and_uidnext(server):
    uids = deliver_numbered(server, 2)
    client = imaps(server)
    try:
        assert ok(client.select("INBOX")) == [b"2"]
        uidvalidity = int(client.response("UIDVALIDITY")[1][0])
        uidnext = int(client.response("UIDNEXT")[1][0])
        assert uidvalidity > 0
        assert uidnext > max(uids), (uidnext, uids)
        uid_list = ok(client.uid("SEARCH", "ALL"))[0].split()
        assert [int(u) for u in uid_list] == uids, "IMAP UIDs differ from `mail list`"
        client.close()
    finally:
        client.logout()
    deliver_numbered(server, 1)
    client = imaps(server)
    try:
        assert ok(client.select("INBOX")) == [b"3"]
        assert int(client.response("UIDVALIDITY")[1][0]) == uidvalidity
        assert int(client.response("UIDNEXT")[1][0]) > uidnext
    finally:
        client.logout()


def test_fetch_flags_internaldate_size_envelope_and_bodystructure_describe_the_message(server):
    attachment = SAMPLES["1mb-attachment"]()
    utf8 = SAMPLES["8bit-utf8"]()
    deliver(server, utf8)
    deliver(server, attachment)
    (_, utf8_stored), (_, attachment_stored) = stored(server, BOB)
    client = imaps(server)
    try:
        client.select("INBOX")
        items = fetch_items(client, "1:2", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
        assert sorted(items) == [1, 2], items.keys()
        for number, stored_bytes in ((1, utf8_stored), (2, attachment_stored)):
            text = items[number]
            assert re.search(rb"FLAGS \(\)", text), text[:300]
            assert re.search(rb"RFC822\.SIZE %d\b" % len(stored_bytes), text), (len(stored_bytes), text[:500])
            when = imaplib.Internaldate2tuple(text)
            assert when is not None, text[:300]
            assert abs(time.mktime(when) - time.time()) < 300, when
            envelope = text.split(b"ENVELOPE (", 1)[1]
            assert envelope.startswith(b'"Thu, 27 Nov 2025 10:00:00 +0000"'), envelope[:200]
            assert b'NIL "sender" "remote.test")' in envelope, envelope[:400]
            assert b'NIL "bob" "example.test")' in envelope, envelope[:400]
        body = utf8_stored.split(b"\r\n\r\n", 1)[1]
        utf8_structure = items[1].split(b"BODYSTRUCTURE (", 1)[1].upper()
        assert utf8_structure.startswith(b'"TEXT" "PLAIN" ("CHARSET" "UTF-8")'), utf8_structure[:200]
        assert b'"8BIT" %d %d' % (len(body), body.count(b"\r\n")) in utf8_structure, utf8_structure[:200]
        boundary = re.search(rb'boundary="([^"]+)"', attachment).group(1).upper()
        mixed = items[2].split(b"BODYSTRUCTURE (", 1)[1].upper()
        assert mixed.startswith(b'("TEXT" "PLAIN"'), mixed[:300]
        assert b'("APPLICATION" "OCTET-STREAM"' in mixed and b'"BASE64"' in mixed, mixed[:600]
        assert b'"MIXED" ("BOUNDARY" "' + boundary + b'")' in mixed, mixed[:600]
    finally:
        client.logout()


def test_store_plus_flags_seen_is_reported_and_persists(server):
    deliver_numbered(server, 2)
    client = imaps(server)
    try:
        client.select("INBOX")
        data = flatten(ok(client.store("1", "+FLAGS", "(\\Seen)")))
        assert re.search(rb"1 \(FLAGS \(\\Seen\)", data), data
        assert ok(client.search(None, "UNSEEN")) == [b"2"]
    finally:
        client.logout()
    client = imaps(server)
    try:
        client.select("INBOX")
        flags = fetch_items(client, "1:2", "(FLAGS)")
        assert b"\\Seen" in flags[1] and b"\\Seen" not in flags[2], flags
    finally:
        client.logout()


def test_uid_copy_reports_copyuid_and_the_copy_holds_the_same_bytes(server):
    deliver(server, SAMPLES["dot-leading-lines"]())
    uid, original = stored(server, BOB)[0]
    client = imaps(server)
    try:
        client.select("INBOX")
        copyuid = response_code(ok(client._simple_command("UID", "COPY", str(uid), "Archive"))[-1],
                                "COPYUID")
        assert copyuid is not None and len(copyuid) == 3, "no COPYUID in the tagged OK"
        validity, source, destination = copyuid
        assert int(source) == uid
        status_line = ok(client.status("Archive", "(UIDVALIDITY MESSAGES)"))[0]
        assert b"UIDVALIDITY " + validity in status_line, (validity, status_line)
        assert b"MESSAGES 1" in status_line, status_line
    finally:
        client.logout()
    assert server.mail_cat(BOB, int(destination), "Archive") == original
    assert server.mail_cat(BOB, uid) == original, "COPY changed the source"


def test_uid_move_reports_copyuid_and_expunges_from_the_source(server):
    uids = deliver_numbered(server, 2)
    originals = dict(stored(server, BOB))
    client = imaps(server)
    try:
        client.select("INBOX")
        typ, data = client._simple_command("UID", "MOVE", str(uids[0]), "Trash")
        assert typ == "OK", data
        untagged = client.untagged_responses
        copyuid = untagged.get("COPYUID", [None])[0]
        copyuid = copyuid.split() if copyuid else response_code(data[-1], "COPYUID")
        assert copyuid and len(copyuid) == 3, f"no COPYUID for MOVE: {untagged} {data}"
        assert untagged.get("EXPUNGE") == [b"1"], f"no `* 1 EXPUNGE` for MOVE: {untagged}"
        assert ok(client.uid("SEARCH", "ALL"))[0].split() == [str(uids[1]).encode()]
    finally:
        client.logout()
    assert [uid for uid, _, _ in server.mail_list(BOB)] == [uids[1]]
    assert server.mail_cat(BOB, int(copyuid[2]), "Trash") == originals[uids[0]]


def test_append_with_a_literal_then_fetch_returns_it_exactly(server):
    draft = message(sender=BOB, to=ALICE, subject="Entwurf ✎", body=".dot\r\nÜnïcödé\r\n\r\nend\r\n")
    when = imaplib.Time2Internaldate(time.mktime((2025, 11, 20, 8, 30, 0, 0, 0, -1)))
    client = imaps(server)
    try:
        typ, data = client.append("Drafts", "(\\Draft)", when, draft)
        assert typ == "OK", data
        appenduid = response_code(data[-1], "APPENDUID")
        assert appenduid and len(appenduid) == 2, f"no APPENDUID: {data}"
        uid = appenduid[1].decode()
        client.select("Drafts")
        assert uid_fetch_body(client, uid) == draft
        meta = flatten(ok(client.uid("FETCH", uid, "(FLAGS INTERNALDATE RFC822.SIZE)")))
        assert b"\\Draft" in meta, meta
        assert b"RFC822.SIZE %d" % len(draft) in meta, meta
        assert time.mktime(imaplib.Internaldate2tuple(meta)) == time.mktime(
            imaplib.Internaldate2tuple(b'INTERNALDATE ' + when.encode())), meta
    finally:
        client.logout()
    assert server.mail_cat(BOB, int(uid), "Drafts") == draft


def test_append_with_a_non_synchronizing_literal_stores_exactly(server):
    draft = message(sender=BOB, subject="literal+", body="sent without waiting for +\r\n")
    with wire_login(server) as wire:
        wire.send(b"a1 APPEND INBOX {%d+}\r\n" % len(draft) + draft + b"\r\n")
        untagged, done = wire.until_tagged("a1")
        assert status(done) == "OK", done
        assert not any(line.startswith(b"+") for line in untagged), f"waited for +: {untagged}"
        _, done = wire.command("a2", "NOOP")
        assert status(done) == "OK", done
    assert only_stored(server, BOB) == draft


def test_expunge_removes_deleted_messages_and_reports_their_sequence_numbers(server):
    uids = deliver_numbered(server, 3)
    client = imaps(server)
    try:
        client.select("INBOX")
        ok(client.store("2", "+FLAGS", "(\\Deleted)"))
        assert [uid for uid, _, _ in server.mail_list(BOB)] == uids, "STORE \\Deleted expunged"
        assert ok(client.expunge()) == [b"2"]
        assert ok(client.search(None, "ALL")) == [b"1 2"]
    finally:
        client.logout()
    assert [uid for uid, _, _ in server.mail_list(BOB)] == [uids[0], uids[2]]


def test_search_finds_unseen_from_and_subject(server):
    deliver(server, message(sender="carol@remote.test", subject="lunch"), sender="carol@remote.test")
    deliver(server, message(sender="dave@remote.test", subject="Invoice 42"), sender="dave@remote.test")
    deliver(server, message(sender="erin@remote.test", subject="hello"), sender="erin@remote.test")
    uids = [uid for uid, _, _ in server.mail_list(BOB)]
    client = imaps(server)
    try:
        client.select("INBOX")
        ok(client.store("1", "+FLAGS", "(\\Seen)"))
        assert ok(client.search(None, "UNSEEN")) == [b"2 3"]
        assert ok(client.search(None, "FROM", '"carol"')) == [b"1"]
        assert ok(client.search(None, "SUBJECT", '"invoice"')) == [b"2"]
        assert ok(client.search(None, "UNSEEN", "FROM", '"erin@remote.test"')) == [b"3"]
        assert ok(client.search(None, "SUBJECT", '"no such subject"')) == [b""]
        assert ok(client.uid("SEARCH", "SUBJECT", '"invoice"')) == [str(uids[1]).encode()]
    finally:
        client.logout()


def test_enable_imap4rev2_then_search_answers_with_esearch(server):
    deliver_numbered(server, 3)
    uids = [uid for uid, _, _ in server.mail_list(BOB)]
    with wire_login(server) as wire:
        untagged, done = wire.command("e1", "ENABLE IMAP4rev2")
        assert status(done) == "OK", done
        assert any(line.upper().startswith(b"* ENABLED") and b"IMAP4REV2" in line.upper()
                   for line in untagged), untagged
        _, done = wire.command("e2", "SELECT INBOX")
        assert status(done) == "OK", done
        _, done = wire.command("e3", "STORE 1 +FLAGS.SILENT (\\Seen)")
        assert status(done) == "OK", done
        untagged, done = wire.command("e4", "SEARCH UNSEEN")
        assert status(done) == "OK", done
        assert not any(line.upper().startswith(b"* SEARCH") for line in untagged), untagged
        assert b'* ESEARCH (TAG "e4") ALL 2:3' in untagged, untagged
        untagged, done = wire.command("e5", "UID SEARCH ALL")
        assert f'* ESEARCH (TAG "e5") UID ALL {uids[0]}:{uids[2]}'.encode() in untagged, untagged
        untagged, done = wire.command("e6", "SEARCH RETURN (COUNT MIN MAX) ALL")
        line = next(line for line in untagged if line.startswith(b"* ESEARCH"))
        assert re.search(rb"\bCOUNT 3\b", line) and re.search(rb"\bMIN 1\b", line), line
        assert re.search(rb"\bMAX 3\b", line), line
        untagged, done = wire.command("e7", 'SEARCH SUBJECT "no such subject"')
        assert b'* ESEARCH (TAG "e7")' in untagged, untagged


def test_create_rename_and_delete_change_the_mailbox_list(server):
    client = imaps(server)
    try:
        ok(client.create("Projects"))
        assert "Projects" in list_mailboxes(client)
        ok(client.append("Projects", None, None, message(to=BOB, subject="plan")))
        ok(client.rename("Projects", "Clients"))
        boxes = list_mailboxes(client)
        assert "Clients" in boxes and "Projects" not in boxes, boxes
        assert len(server.mail_list(BOB, "Clients")) == 1, "the message did not move with RENAME"
        typ, _ = client.create("Clients")
        assert typ == "NO", "CREATE of an existing mailbox succeeded"
        ok(client.delete("Clients"))
        assert "Clients" not in list_mailboxes(client)
        typ, _ = client.select("Clients")
        assert typ == "NO"
    finally:
        client.logout()


def test_status_reports_messages_uidnext_unseen_and_size(server):
    deliver_numbered(server, 2)
    deliver(server, SAMPLES["8bit-utf8"]())
    entries = server.mail_list(BOB)
    client = imaps(server)
    try:
        client.select("INBOX")
        ok(client.store("1", "+FLAGS", "(\\Seen)"))
        client.close()
        line = ok(client.status("INBOX", "(MESSAGES UIDNEXT UNSEEN SIZE)"))[0]
        values = dict(re.findall(rb"(MESSAGES|UIDNEXT|UNSEEN|SIZE) (\d+)", line))
        assert int(values[b"MESSAGES"]) == 3, line
        assert int(values[b"UNSEEN"]) == 2, line
        assert int(values[b"UIDNEXT"]) > max(uid for uid, _, _ in entries), line
        assert int(values[b"SIZE"]) == sum(size for _, size, _ in entries), line
    finally:
        client.logout()


def test_bad_syntax_gets_bad_and_the_session_goes_on(server):
    deliver_numbered(server, 1)
    with wire_login(server, select="INBOX") as wire:
        for tag, line in [("b1", "FETCH"), ("b2", "SELEKT INBOX"), ("b3", "UID FETCH 1:* (BODY["),
                          ("b4", "STORE 1 +FLAGS"), ("b5", "SEARCH FROM"), ("b6", "FETCH 1 (FLAGS")]:
            _, done = wire.command(tag, line)
            assert status(done) == "BAD", f"{line!r} got {done!r}"
        _, done = wire.command("b7", "NOOP")
        assert status(done) == "OK", done
        untagged, done = wire.command("b8", "FETCH 1 (UID)")
        assert status(done) == "OK" and untagged, (untagged, done)


# ---- IDLE and concurrent sessions ----

def test_idle_announces_a_delivery_within_a_second_of_the_smtp_250(server):
    client = imaps(server)
    arrivals = queue.Queue()
    try:
        client.select("INBOX")
        tag = client._new_tag().decode()
        client.send(f"{tag} IDLE\r\n".encode())
        continuation = client.readline()
        assert continuation.startswith(b"+"), continuation

        def read_idle_responses():
            client.sock.settimeout(10)
            try:
                while True:
                    line = client.readline()
                    arrivals.put((time.monotonic(), line))
                    if not line or b"EXISTS" in line or line.startswith(tag.encode()):
                        return
            except OSError as e:
                arrivals.put((time.monotonic(), repr(e).encode()))

        reader = threading.Thread(target=read_idle_responses, daemon=True)
        reader.start()
        with smtp(server.ports["smtp"]) as mx:
            mx.ehlo("client.example.net")
            mx.starttls(context=server.tls_context())
            mx.ehlo("client.example.net")
            mx.mail("sender@remote.test")
            mx.rcpt(BOB)
            code, _ = mx.data(message())
            accepted_at = time.monotonic()
            assert code == 250
        seen = []
        while True:
            try:
                at, line = arrivals.get(timeout=max(0.0, accepted_at + 5 - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no EXISTS within 5 s of the 250; got {seen}")
            seen.append(line)
            if b"EXISTS" in line:
                break
        assert line.strip() == b"* 1 EXISTS", seen
        latency = at - accepted_at
        print(f"EXISTS {latency:.3f} s after the SMTP 250")
        assert latency < 1.0, f"EXISTS came {latency:.3f} s after the 250"
        reader.join(timeout=5)
        client.send(b"DONE\r\n")
        while True:
            line = client.readline()
            if line.startswith(tag.encode()):
                break
        assert line.split()[1] == b"OK", line
    finally:
        client.logout()


@pytest.mark.parametrize("listener_a", ["imaps", "imap"], ids=["both-imaps", "imap-starttls-and-imaps"])
def test_expunge_in_one_session_reaches_another_only_at_noop_not_during_fetch(server, listener_a):
    uids = deliver_numbered(server, 3)
    with wire_login(server, select="INBOX", listener=listener_a) as a, \
            wire_login(server, select="INBOX") as b:
        _, done = a.command("a1", "STORE 2 +FLAGS.SILENT (\\Deleted)")
        assert status(done) == "OK", done
        untagged, done = a.command("a2", "EXPUNGE")
        assert status(done) == "OK", done
        assert b"* 2 EXPUNGE" in untagged, untagged

        untagged, done = b.command("b1", "FETCH 1:3 (UID)")
        assert status(done) in ("OK", "NO"), done
        assert not any(b"EXPUNGE" in line for line in untagged), f"EXPUNGE during FETCH: {untagged}"
        assert f"* 1 FETCH (UID {uids[0]})".encode() in untagged, untagged
        assert f"* 3 FETCH (UID {uids[2]})".encode() in untagged, f"numbers shifted: {untagged}"

        untagged, done = b.command("b2", "SEARCH ALL")
        assert not any(b"EXPUNGE" in line for line in untagged), f"EXPUNGE during SEARCH: {untagged}"
        # The expunged message may or may not match (RFC 2180 §4.1), but the numbers stay.
        assert b"* SEARCH 1 2 3" in untagged or b"* SEARCH 1 3" in untagged, untagged

        untagged, done = b.command("b3", "NOOP")
        assert status(done) == "OK", done
        assert [line for line in untagged if b"EXPUNGE" in line] == [b"* 2 EXPUNGE"], untagged

        untagged, done = b.command("b4", "FETCH 1:* (UID)")
        assert untagged == [f"* 1 FETCH (UID {uids[0]})".encode(),
                            f"* 2 FETCH (UID {uids[2]})".encode()], untagged


def test_a_delivery_during_a_session_is_announced_at_noop(server):
    deliver_numbered(server, 1)
    with wire_login(server, select="INBOX") as wire:
        deliver_numbered(server, 1)
        untagged, done = wire.command("n1", "NOOP")
        assert status(done) == "OK", done
        assert b"* 2 EXISTS" in untagged, untagged
