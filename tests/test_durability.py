"""A 250 to DATA means the message is on disk: it survives SIGKILL, and exactly once."""

import collections
import smtplib
import threading
import time

import pytest

from conftest import PASSWORDS, split_trace
from mail import login, message, new_message_id

ALICE = "alice@example.test"
BOB = "bob@example.test"
CLIENTS = 12
MIN_ACKED_BEFORE_KILL = 80
MAX_LOAD_SECONDS = 20


def open_session(server, listener):
    client = smtplib.SMTP("127.0.0.1", server.ports[listener], timeout=10)
    try:
        client.ehlo("client.example.net")
        if listener == "submission":
            client.starttls(context=server.tls_context())
            client.ehlo("client.example.net")
            code, text = login(client, ALICE, PASSWORDS[ALICE])
            if code != 235:
                raise smtplib.SMTPException(f"AUTH got {code} {text!r}")
    except BaseException:
        client.close()
        raise
    return client


def sender_loop(server, listener, number, stop, acked, errors):
    sender = ALICE if listener == "submission" else "sender@remote.test"
    sequence = 0
    while not stop.is_set():
        try:
            with open_session(server, listener) as client:
                while not stop.is_set():
                    sequence += 1
                    message_id = new_message_id(f"c{number}-m{sequence}")
                    sent = message(sender=sender, to=BOB, message_id=message_id,
                                   body=f"client {number} message {sequence}\r\n" * 20)
                    if client.mail(sender)[0] != 250:
                        raise smtplib.SMTPException("MAIL refused")
                    if client.rcpt(BOB)[0] != 250:
                        raise smtplib.SMTPException("RCPT refused")
                    code, text = client.data(sent)
                    if code == 250:
                        acked.append((message_id, sent))
                    else:
                        errors.append((time.monotonic(), f"DATA got {code} {text!r}"))
        except (OSError, smtplib.SMTPException) as e:
            if not stop.is_set():
                errors.append((time.monotonic(), repr(e)))
            if isinstance(e, ConnectionRefusedError):
                return


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_every_acknowledged_message_survives_sigkill_exactly_once(server, listener):
    stop = threading.Event()
    acked, errors = [], []
    threads = [threading.Thread(target=sender_loop, args=(server, listener, n, stop, acked, errors),
                                daemon=True)
               for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + MAX_LOAD_SECONDS
    while len(acked) < MIN_ACKED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_at = time.monotonic()
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert not any(t.is_alive() for t in threads), "a client is still hanging after the kill"
    before_kill = [error for at, error in errors if at < killed_at]
    assert not before_kill, f"clients failed before the kill: {before_kill[:5]}"
    assert len(acked) >= MIN_ACKED_BEFORE_KILL, (
        f"only {len(acked)} messages acknowledged under load in {MAX_LOAD_SECONDS}s; errors: {errors[:5]}")

    server.start()
    stored_ids = [msgid for _, _, msgid in server.mail_list(BOB)]
    print(f"{len(acked)} acknowledged before SIGKILL, {len(stored_ids)} stored after restart")
    counts = collections.Counter(stored_ids)
    duplicates = {msgid: n for msgid, n in counts.items() if n > 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    missing = [msgid for msgid, _ in acked if msgid not in counts]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost: {missing[:5]}"

    by_id = {msgid: uid for uid, _, msgid in server.mail_list(BOB)}
    for message_id, sent in acked[:: max(1, len(acked) // 8)]:
        split_trace(server.mail_cat(BOB, by_id[message_id]), sent)
