"""The admin's view of outbound delivery: `sealpost queue list [--json]`, `queue retry`,
`queue drop`, `tls-memory list|reset`, against a running server whose queue worker
really tried (a closed port as the remote MX, found through sealpost-testdns), and a
second sealpost as a receiving MX reached over verified TLS.
"""

import json
import re
import socket
import time
from datetime import datetime, timezone

import pytest

from conftest import PASSWORDS
from mail import login, message, new_message_id, smtp
from testdns import TestDns

ALICE = "alice@example.test"
REMOTE_ZONE = "@ MX 10 mx.remote.test.\nmx A 127.0.0.1\n"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def remote_dns():
    """remote.test's MX at 127.0.0.1, with DNSSEC on the root so the unsigned zone is
    provably insecure (not bogus) to the validating resolver."""
    dns = TestDns({"remote.test": REMOTE_ZONE}, dnssec=True)
    yield dns
    dns.stop()


def dns_config(dns):
    return {"nameservers": [dns.address], "trust_anchor": dns.trust_anchor}


def submit(server, recipients, tag):
    raw = message(sender=ALICE, to=", ".join(recipients), message_id=new_message_id(tag))
    client = smtp(server.ports["submission"])
    try:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert login(client, ALICE, PASSWORDS[ALICE])[0] == 235
        assert client.sendmail(ALICE, recipients, raw) == {}
    finally:
        client.quit()


def queue_json(server):
    return json.loads(server.cli("queue", "list", "--json").stdout)


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out: {what}")
        time.sleep(0.2)


def attempted(server, attempts=1):
    entries = queue_json(server)
    return entries if entries and all(e["attempts"] >= attempts for e in entries) else None


def parse_time(text):
    assert RFC3339.fullmatch(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def test_queue_list_shows_a_deferred_entry_with_its_error_then_retry_and_drop(make_server, remote_dns):
    server = make_server({"dns": dns_config(remote_dns),
                          "delivery": {"port": closed_port(), "first_retry": 3600, "max_retry": 3600}})
    submit(server, ["bob@remote.test", "carol@remote.test"], "queue-cli")
    [entry] = wait_for(lambda: attempted(server), "the worker's first attempt")

    assert entry["sender"] == ALICE
    assert entry["attempts"] == 1
    assert entry["require_tls"] is False
    assert entry["size"] > 0
    created, next_try = parse_time(entry["created"]), parse_time(entry["next_attempt"])
    # first_retry = 3600: the next try is an hour after the attempt.
    assert 3500 <= (next_try - created).total_seconds() <= 3700, entry
    assert [r["address"] for r in entry["recipients"]] == ["bob@remote.test", "carol@remote.test"]
    for recipient in entry["recipients"]:
        assert recipient["status"] == "pending", entry
        assert "mx.remote.test [127.0.0.1]" in recipient["last_error"], entry
        assert "refused" in recipient["last_error"].lower(), entry

    text = server.cli("queue", "list").stdout.decode()
    lines = text.splitlines()
    assert lines[0].startswith(f"{entry['id']} {ALICE} {entry['size']} bytes, queued {entry['created']}, "
                               f"1 attempt, next try {entry['next_attempt']}"), text
    assert any(line.startswith("  bob@remote.test pending: mx.remote.test [127.0.0.1]") for line in lines), text
    assert any(line.startswith("  carol@remote.test pending: ") for line in lines), text

    # retry: due now, and the running worker tries again within its poll interval.
    out = server.cli("queue", "retry", str(entry["id"])).stdout.decode()
    assert out.strip() == f"queue entry {entry['id']} is due now"
    wait_for(lambda: attempted(server, 2), "the retried attempt")

    # The delivery log has one line per attempt.
    log = server.stderr_path.read_text(errors="replace")
    deferred = [line for line in log.splitlines()
                if f"delivery deferred id={entry['id']} domain=remote.test mx=mx.remote.test ip=127.0.0.1 "
                   f"tls=none cipher=- " in line]
    assert len(deferred) == 2, log[-3000:]

    out = server.cli("queue", "drop", str(entry["id"])).stdout.decode()
    assert out.strip() == f"dropped queue entry {entry['id']}"
    assert queue_json(server) == []
    assert server.cli("queue", "list").stdout.decode() == ""


def test_retry_and_drop_of_an_absent_entry_exit_1_saying_so(make_server):
    server = make_server(start=False)
    for command in ("retry", "drop"):
        result = server.cli("queue", command, "4242", check=False)
        assert result.returncode == 1
        assert "no queue entry 4242" in result.stderr.decode()
        assert result.stdout == b""
    assert queue_json(server) == []


def test_tls_memory_lists_a_domain_seen_with_verified_tls_and_reset_forgets_it(make_server, remote_dns):
    receiver = make_server({"hostname": "mx.remote.test", "local_domains": ["remote.test"]},
                           accounts={"bob@remote.test": "bob-remote-secret"}, name="receiver")
    sender = make_server({"dns": dns_config(remote_dns),
                          "delivery": {"port": receiver.ports["smtp"], "extra_ca": str(receiver.ca_path)}},
                         name="sender")
    assert sender.cli("tls-memory", "list").stdout == b""

    submit(sender, ["bob@remote.test"], "tls-memory")
    wait_for(lambda: receiver.mail_list("bob@remote.test"), "bob@remote.test got the message")
    wait_for(lambda: queue_json(sender) == [], "the sender's queue emptied")

    listed = sender.cli("tls-memory", "list").stdout.decode()
    match = re.fullmatch(r"remote\.test verified TLS since (\S+)\n", listed)
    assert match, listed
    parse_time(match.group(1))
    log = sender.stderr_path.read_text(errors="replace")
    assert re.search(r"delivery delivered id=\d+ domain=remote\.test mx=mx\.remote\.test ip=127\.0\.0\.1 "
                     r"tls=TLSv1\.3 cipher=\S+ policy=opportunistic verified=yes ", log), log[-3000:]

    out = sender.cli("tls-memory", "reset", "Remote.Test.").stdout.decode()
    assert out.startswith("remote.test forgotten"), out
    assert sender.cli("tls-memory", "list").stdout == b""
    result = sender.cli("tls-memory", "reset", "remote.test", check=False)
    assert result.returncode == 1
    assert "remote.test is not in the TLS memory" in result.stderr.decode()
