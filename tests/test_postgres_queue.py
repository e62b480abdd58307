"""The outbound queue shared by two sealpost nodes on one PostgreSQL database: both
workers claim from it (SELECT … FOR UPDATE SKIP LOCKED under a lease), and the receiver
counts every message exactly once; when one node is killed mid-queue, the other takes
over its entries once their (short, renewed) leases run out, and nothing is lost. Uses
the loopback delivery world of tests/delivery_fixtures.py and the database of
tests/test_postgres_nodes.py.
"""

import threading
import time

from delivery_fixtures import (  # noqa: F401 (world and make_sender are pytest fixtures)
    ALICE, make_sender, submit_many, wait_until, world)
from mail import message, new_message_id
from test_postgres_nodes import postgres_url  # noqa: F401 (fixture)

COUNT = 1000
TIMEOUT = 600

KILL_COUNT = 300
KILL_LEASE = 10  # seconds, the shortest `[delivery] lease` allowed


def test_two_nodes_deliver_1000_messages_exactly_once(world, make_sender, postgres_url):
    """Both workers run while mail is submitted to both nodes at once, so each claims
    entries the other queued too (every QueueAdded reaches both nodes)."""
    shared = {"store": {"url": postgres_url}}
    a = make_sender(config=shared, name="node-a")
    b = make_sender(config=shared, start=False, name="node-b")
    b.accounts = {}  # alice@ is in the shared store already
    b.start()
    tag = "two-nodes"
    batches = {node: [] for node in (a, b)}
    for n in range(COUNT):
        node = a if n % 2 else b
        batches[node].append((["bulk@plain.test"], message(
            sender=ALICE, to="bulk@plain.test", subject=f"bulk {n}",
            message_id=new_message_id(f"{tag}-{n}"))))
    started = time.monotonic()
    submitters = [threading.Thread(target=submit_many, args=(node, batch))
                  for node, batch in batches.items()]
    for submitter in submitters:
        submitter.start()
    for submitter in submitters:
        submitter.join()

    def delivered():
        return world.stored("bulk@plain.test", tag)
    wait_until(lambda: len(delivered()) >= COUNT, TIMEOUT, f"{COUNT} messages did not arrive",
               interval=1.0, diagnose=lambda: f"{len(delivered())} arrived; "
                                              f"queue: {len(a.queue_json())}")
    elapsed = time.monotonic() - started
    wait_until(lambda: a.queue_json() == [], 30, "the shared queue did not empty")
    time.sleep(1)  # a duplicate would be in flight now
    stored = delivered()
    distinct = {mid for _, mid in stored}
    by_a = len(a.delivery_lines(outcome="delivered"))
    by_b = len(b.delivery_lines(outcome="delivered"))
    print(f"{COUNT} messages submitted and delivered in {elapsed:.1f} s: "
          f"node A delivered {by_a}, node B {by_b}")
    assert len(distinct) == COUNT, f"{COUNT - len(distinct)} messages missing"
    assert len(stored) == COUNT, f"{len(stored) - COUNT} messages delivered twice"
    assert by_a + by_b == COUNT
    assert by_a > 0 and by_b > 0, "one node delivered everything: the queue was not shared"


def test_sigkill_of_one_node_mid_queue_the_other_finishes_and_nothing_is_lost(
        world, make_sender, postgres_url):
    """Issue 7: both nodes deliver while mail is submitted through node B; node A is
    SIGKILLed once it has delivered some, holding leases on entries under way. Node B
    delivers the rest, A's leased entries included once their lease runs out: every
    Message-ID arrives at least once (a message A sent just before dying may arrive
    twice: a duplicate, never a loss), well within minutes of the kill."""
    shared = {"store": {"url": postgres_url}}
    lease = {"lease": KILL_LEASE}
    a = make_sender(delivery=lease, config=shared, name="node-a")
    b = make_sender(delivery=lease, config=shared, start=False, name="node-b")
    b.accounts = {}  # alice@ is in the shared store already
    b.start()
    tag = "sigkill"
    batch = [(["bulk@plain.test"], message(
        sender=ALICE, to="bulk@plain.test", subject=f"kill {n}",
        message_id=new_message_id(f"{tag}-{n}"))) for n in range(KILL_COUNT)]
    submitter = threading.Thread(target=submit_many, args=(b, batch))
    submitter.start()

    def delivered():
        return world.stored("bulk@plain.test", tag)
    try:
        wait_until(lambda: len(a.delivery_lines(outcome="delivered")) >= 5, 120,
                   "node A delivered nothing to kill it in the middle of", interval=0.02)
        a.kill()
        killed = time.monotonic()
        by_a = len(a.delivery_lines(outcome="delivered"))
    finally:
        submitter.join()
    # Submission went through node B, which kept running: it has all of them queued.
    wait_until(lambda: len({mid for _, mid in delivered()}) >= KILL_COUNT, 180,
               f"{KILL_COUNT} messages did not all arrive after node A was killed",
               interval=1.0, diagnose=lambda: f"{len({mid for _, mid in delivered()})} arrived; "
                                              f"queue: {len(b.queue_json())}")
    took_over = time.monotonic() - killed
    wait_until(lambda: b.queue_json() == [], 30, "the shared queue did not empty",
               diagnose=lambda: f"queue: {b.queue_json()}\nnode B's last delivery lines: "
                                f"{[l['line'] for l in b.delivery_lines()[-5:]]}")
    emptied = time.monotonic() - killed
    time.sleep(1)  # a duplicate would be in flight now
    stored = delivered()
    distinct = {mid for _, mid in stored}
    by_b = len(b.delivery_lines(outcome="delivered"))
    print(f"node A delivered {by_a} before SIGKILL; node B {by_b}; all {KILL_COUNT} arrived "
          f"{took_over:.1f} s and the queue was empty {emptied:.1f} s after the kill; "
          f"{len(stored) - len(distinct)} duplicates")
    expected = {f"{tag}-{n}" for n in range(KILL_COUNT)}
    arrived = {mid.strip("<>").split(".")[0] for mid in distinct}  # <sigkill-N.uuid@host>
    missing = sorted(expected - arrived)
    assert not missing, f"{len(missing)} messages lost: {missing[:10]}"
    assert len(distinct) == KILL_COUNT
    assert by_a < KILL_COUNT, "node A had delivered everything before it was killed"
    assert by_b > 0, "node B delivered nothing"
    assert by_a + by_b >= KILL_COUNT
    # What node A held when it died went to node B after a lease, not the old 30 minutes.
    assert emptied < KILL_LEASE + 45, f"node A's entries waited {emptied:.0f} s for node B"
