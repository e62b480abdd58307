"""The outbound queue shared by two sealpost nodes on one PostgreSQL database: both
workers claim from it (SELECT … FOR UPDATE SKIP LOCKED under a lease), and the receiver
counts every message exactly once. Uses the loopback delivery world of
tests/delivery_fixtures.py and the database of tests/test_postgres_nodes.py.
"""

import threading
import time

from delivery_fixtures import (  # noqa: F401 (world and make_sender are pytest fixtures)
    ALICE, make_sender, submit_many, wait_until, world)
from mail import message, new_message_id
from test_postgres_nodes import postgres_url  # noqa: F401 (fixture)

COUNT = 1000
TIMEOUT = 600


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
