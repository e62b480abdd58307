"""The per-account IMAP session limit counts ports 143 and 993 together."""

import imaplib

import pytest

from mailread import BOB, READING_CONFIG, imap_starttls, imaps

LIMIT = 50  # ImapLimits::max_sessions_per_account


def test_session_limit_counts_starttls_and_implicit_tls_sessions_together(make_server):
    server = make_server(config=READING_CONFIG)
    sessions = []
    try:
        for i in range(LIMIT):
            sessions.append(imaps(server, user=BOB) if i % 2 else imap_starttls(server, user=BOB))
        for connect in (imaps, imap_starttls):
            with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
                connect(server, user=BOB)
        sessions.pop().logout()
        imaps(server, user=BOB).logout()
    finally:
        for client in sessions:
            client.logout()
