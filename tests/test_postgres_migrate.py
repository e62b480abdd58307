"""`sealpost store migrate --to postgres://…`: an embedded store with messages, flags,
an expunged UID, a copy in another mailbox and a queue entry is copied into PostgreSQL,
and an IMAP client of a server on that database sees the same UIDVALIDITY, UIDs, flags
and bytes; the queue keeps its entry. A copy cut short leaves the database unservable
until the command, run again, completes it.
"""

import json
import re

from test_postgres_nodes import node_config, postgres_url, psql  # noqa: F401 (fixture)

from mail import message
from mailread import BOB, READING_CONFIG, deliver, imaps, ok, submit, uid_fetch_body

# The queue entry must stay queued: no worker delivers it while the test looks.
EMBEDDED_CONFIG = {**READING_CONFIG, "delivery": {"enabled": False}}


def mailbox_state(server, mailbox="INBOX"):
    """(UIDVALIDITY, {uid: (flags, bytes)}) as bob's IMAP client sees the mailbox."""
    client = imaps(server)
    try:
        ok(client.select(mailbox, readonly=True))
        uid_validity = int(client.untagged_responses["UIDVALIDITY"][0])
        listing = ok(client.uid("FETCH", "1:*", "(UID FLAGS)"))
        state = {}
        for line in listing:
            if not isinstance(line, bytes):
                continue
            match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
            assert match, line
            flags = tuple(sorted(match.group(2).decode().split()))
            uid = int(match.group(1))
            state[uid] = (flags, uid_fetch_body(client, uid))
        return uid_validity, state
    finally:
        client.logout()


def fill_embedded_store(server):
    """Four messages to bob (the third expunged, two flagged, one copied to Archive) and
    one submitted to a remote address (queued)."""
    for n in range(4):
        deliver(server, message(subject=f"message {n}", body=f"body {n}\r\n"))
    client = imaps(server)
    try:
        ok(client.select("INBOX"))
        ok(client.uid("STORE", "1", "+FLAGS", r"(\Seen)"))
        ok(client.uid("STORE", "2", "+FLAGS", r"(\Flagged $Work)"))
        ok(client.uid("COPY", "2", "Archive"))
        ok(client.uid("STORE", "3", "+FLAGS", r"(\Deleted)"))
        ok(client.expunge())
    finally:
        client.logout()
    submit(server, message(sender="alice@example.test", to="carol@remote.example"),
           to="carol@remote.example")


def queue_entries(server):
    return json.loads(server.cli("queue", "list", "--json").stdout)


def test_a_migrated_store_serves_the_same_uids_uidvalidity_flags_bytes_and_queue(
        make_server, postgres_url):
    embedded = make_server(EMBEDDED_CONFIG, name="embedded")
    fill_embedded_store(embedded)
    inbox_before = mailbox_state(embedded)
    archive_before = mailbox_state(embedded, "Archive")
    queue_before = queue_entries(embedded)
    assert sorted(inbox_before[1]) == [1, 2, 4]
    assert inbox_before[1][2][0] == ("$Work", "\\Flagged")
    assert len(queue_before) == 1
    assert embedded.stop() == 0

    migrated = embedded.cli("store", "migrate", "--to", postgres_url)
    out = migrated.stdout.decode()
    assert re.search(r"^messages\s+4 rows\s+verified$", out, re.MULTILINE), out
    assert re.search(r"^queue\s+1 rows\s+verified$", out, re.MULTILINE), out
    assert re.search(r"^messages checksum\s+[0-9a-f]{64}$", out, re.MULTILINE), out
    assert postgres_url.split("@")[0].split(":")[-1] not in (out + migrated.stderr.decode()), \
        "the password was printed"

    again = embedded.cli("store", "migrate", "--to", postgres_url, check=False)
    assert again.returncode == 1
    assert b"finished copy" in again.stderr, again.stderr

    on_postgres = make_server(merge_store(EMBEDDED_CONFIG, postgres_url), accounts={},
                              name="on-postgres")
    assert mailbox_state(on_postgres) == inbox_before
    assert mailbox_state(on_postgres, "Archive") == archive_before
    assert queue_entries(on_postgres) == queue_before

    deliver(on_postgres, message(subject="after the move"))
    uid_validity, inbox_after = mailbox_state(on_postgres)
    assert uid_validity == inbox_before[0]
    assert sorted(inbox_after) == [1, 2, 4, 5], "the next UID follows the copied ones"


def test_a_cut_short_copy_is_not_served_and_running_again_completes_it(
        make_server, postgres_url):
    embedded = make_server(EMBEDDED_CONFIG, name="embedded")
    fill_embedded_store(embedded)
    inbox_before = mailbox_state(embedded)
    assert embedded.stop() == 0
    embedded.cli("store", "migrate", "--to", postgres_url)

    # As if the copy had stopped after the first message: later rows and bodies missing.
    psql(postgres_url, "UPDATE store_migration SET finished = NULL; "
                       "DELETE FROM messages WHERE uid > 1; DELETE FROM queue_recipients; "
                       "DELETE FROM queue; "
                       "DELETE FROM blobs WHERE id NOT IN (SELECT blob FROM messages)")
    on_postgres = make_server(merge_store(EMBEDDED_CONFIG, postgres_url), accounts={},
                              name="on-postgres", start=False)
    refused = on_postgres.cli("account", "list", check=False)
    assert refused.returncode == 1
    assert b"unfinished" in refused.stderr and b"store migrate" in refused.stderr, refused.stderr

    resumed = embedded.cli("store", "migrate", "--to", postgres_url)
    assert b"resumed an earlier copy" in resumed.stdout, resumed.stdout
    on_postgres.start()
    assert mailbox_state(on_postgres) == inbox_before
    assert len(queue_entries(on_postgres)) == 1


def test_migrating_into_a_database_that_holds_a_store_is_refused(make_server, postgres_url):
    on_postgres = make_server(merge_store(READING_CONFIG, postgres_url), name="on-postgres")
    embedded = make_server(EMBEDDED_CONFIG, name="embedded")
    assert embedded.stop() == 0
    refused = embedded.cli("store", "migrate", "--to", postgres_url, check=False)
    assert refused.returncode == 1
    assert b"already holds a sealpost store" in refused.stderr, refused.stderr
    assert on_postgres.cli("account", "list").stdout.split()


def merge_store(config, url):
    merged = node_config(url)
    merged.update({k: v for k, v in config.items() if k != "listeners"})
    return merged
