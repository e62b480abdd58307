"""Several sealpost nodes on one PostgreSQL database (`[store] url = "postgres://…"`):
mail accepted by one node is read byte-exact on the other, and IDLE on one node hears a
delivery on the other within a second (LISTEN/NOTIFY).

The database server is the one at SEALPOST_TEST_POSTGRES_URL (scripts/test starts a
throw-away cluster with scripts/postgres); each test gets a database of its own. Without
the variable these tests fail under CI and are skipped elsewhere.
"""

import imaplib
import itertools
import os
import poplib
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import PASSWORDS, merge
from mail import message
from mailread import (ALICE, BOB, READING_CONFIG, deliver, imaps, ok, pop3_retr, pop3s,
                      submit, uid_fetch_body)

POSTGRES_URL_VARIABLE = "SEALPOST_TEST_POSTGRES_URL"
_databases = itertools.count()


def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"{POSTGRES_URL_VARIABLE} is not set: under CI the PostgreSQL tests must run "
                    "(scripts/test starts a server with scripts/postgres and sets it)")
    pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set (scripts/postgres start DIR prints a URL)")


def psql_bin() -> str:
    found = shutil.which("psql") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), reverse=True)), None)
    if not found:
        pytest.fail("psql not found: apt-get install -y postgresql")
    return str(found)


def psql(url: str, sql: str) -> str:
    result = subprocess.run([psql_bin(), url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, f"psql {sql!r}: {result.stderr.decode(errors='replace')}"
    return result.stdout.decode()


def with_database(url: str, name: str) -> str:
    """`url` naming the database `name` instead of its own."""
    base, sep, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}{sep}{query}"


@pytest.fixture
def postgres_url():
    """The URL of a fresh database, dropped after the test."""
    server = postgres_server_url()
    name = f"sealpost_py_{os.getpid()}_{next(_databases)}"
    psql(server, f"DROP DATABASE IF EXISTS {name}")
    psql(server, f"CREATE DATABASE {name}")
    yield with_database(server, name)
    psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def node_config(url: str) -> dict:
    return merge(READING_CONFIG, {"store": {"url": url}})


@pytest.fixture
def two_nodes(make_server, postgres_url):
    """Node A adds alice@ and bob@ to the shared store; node B finds them there."""
    a = make_server(node_config(postgres_url), name="node-a")
    b = make_server(node_config(postgres_url), accounts={}, name="node-b")
    b.accounts = dict(PASSWORDS)
    return a, b


def test_mail_submitted_on_node_a_is_read_byte_exact_over_imap_and_pop3_on_node_b(two_nodes):
    a, b = two_nodes
    sent = message(sender=ALICE, to=BOB, subject="across nodes")
    submit(a, sent)
    stored_on_a = a.mail_cat(BOB, 1)
    assert stored_on_a.endswith(sent)

    client = imaps(b)
    try:
        ok(client.select("INBOX"))
        assert uid_fetch_body(client, 1) == stored_on_a
    finally:
        client.logout()
    pop = pop3s(b)
    try:
        assert pop3_retr(pop, 1) == stored_on_a
    finally:
        pop.quit()
    assert b.mail_cat(BOB, 1) == stored_on_a


def test_idle_on_node_b_sees_a_delivery_on_node_a_within_a_second(two_nodes):
    a, b = two_nodes
    client = imaps(b)
    arrivals = queue.Queue()
    try:
        ok(client.select("INBOX"))
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
        deliver(a, message(subject="for the idler"))
        accepted_at = time.monotonic()
        seen = []
        while True:
            try:
                at, line = arrivals.get(timeout=max(0.0, accepted_at + 5 - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no EXISTS on node B within 5 s of node A's 250; got {seen}")
            seen.append(line)
            if b"EXISTS" in line:
                break
        assert line.strip() == b"* 1 EXISTS", seen
        latency = at - accepted_at
        print(f"EXISTS on node B {latency:.3f} s after node A's 250")
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


def test_flags_and_uids_agree_on_both_nodes(two_nodes):
    a, b = two_nodes
    for n in range(3):
        deliver(a if n % 2 == 0 else b, message(subject=f"message {n}"))
    on_a = imaps(a)
    on_b = imaps(b)
    try:
        ok(on_a.select("INBOX"))
        ok(on_b.select("INBOX"))
        ok(on_a.uid("STORE", "2", "+FLAGS", r"(\Flagged $Work)"))
        flags = ok(on_b.uid("FETCH", "1:*", "(UID FLAGS)"))
        text = b" ".join(line for line in flags if isinstance(line, bytes))
        assert b"UID 1 FLAGS ()" in text, text
        assert b"UID 3 FLAGS ()" in text, text
        assert b"UID 2 FLAGS (" in text and b"\\Flagged" in text and b"$Work" in text, text
        status_a = ok(on_a.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)"))
        status_b = ok(on_b.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)"))
        assert status_a == status_b
    finally:
        on_a.logout()
        on_b.logout()


def test_an_account_added_through_node_b_logs_in_on_node_a(two_nodes):
    a, b = two_nodes
    b.add_account("carol@example.test", "carol-secret-3")
    client = imaps(a, login=False)
    try:
        ok(client.login("carol@example.test", "carol-secret-3"))
    finally:
        client.logout()
    assert "carol@example.test" in a.cli("account", "list").stdout.decode().split()


def test_a_pop3_session_on_node_a_locks_the_maildrop_against_node_b(two_nodes):
    a, b = two_nodes
    deliver(a, message(subject="one"))
    holder = pop3s(a)
    try:
        with pytest.raises(poplib.error_proto) as refused:
            pop3s(b)
        assert refused.value.args[0].startswith(b"-ERR [IN-USE]"), refused.value
    finally:
        holder.quit()
    deadline = time.monotonic() + 5
    while True:
        try:
            client = pop3s(b)
            break
        except poplib.error_proto as e:
            if b"IN-USE" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        assert len(pop3_retr(client, 1)) > 0
    finally:
        client.quit()


IMAP_SESSION_LIMIT = 50  # ImapLimits::max_sessions_per_account


def test_the_imap_session_limit_counts_the_sessions_of_both_nodes(two_nodes):
    a, b = two_nodes
    sessions = []
    try:
        for i in range(IMAP_SESSION_LIMIT):
            sessions.append(imaps(a if i % 2 else b))
        for node in (a, b):
            with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
                imaps(node)
        sessions.pop().logout()
        imaps(a).logout()
    finally:
        for client in sessions:
            client.logout()
