"""Submission as swaks sees it."""

import shutil
import subprocess

import pytest

from conftest import PASSWORDS, received_header
from mail import new_message_id

ALICE = "alice@example.test"
BOB = "bob@example.test"


def swaks(server, listener, *options, user=ALICE):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed: apt-get install swaks (scripts/test does it)")
    args = ["swaks", "--server", "127.0.0.1", "--port", str(server.ports[listener]),
            "--from", user, "--to", BOB, "--ehlo", "client.example.net",
            "--timeout", "15", *options]
    result = subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def credentials(user=ALICE):
    return ["--auth-user", user, "--auth-password", PASSWORDS[user]]


def verified_tls(server):
    return ["--tls-verify", "--tls-ca-path", str(server.ca_path), "--tls-sni", "localhost"]


def stored_message_ids(server):
    return [msgid for _, _, msgid in server.mail_list(BOB)]


def test_swaks_starttls_with_auth_plain_on_587_delivers(server):
    message_id = new_message_id("swaks-587")
    code, output = swaks(server, "submission", "--tls", *verified_tls(server), "--auth", "PLAIN",
                         *credentials(), "--header", f"Message-Id: {message_id}")
    assert code == 0, output
    assert stored_message_ids(server) == [message_id]
    stored = server.mail_cat(BOB, server.mail_list(BOB)[0][0])
    assert "with ESMTPSA" in received_header(stored)


def test_swaks_tls_on_connect_with_auth_on_465_delivers(server):
    message_id = new_message_id("swaks-465")
    code, output = swaks(server, "submissions", "--tlsc", *verified_tls(server), "--auth", "PLAIN",
                         *credentials(), "--header", f"Message-Id: {message_id}")
    assert code == 0, output
    assert stored_message_ids(server) == [message_id]


def test_swaks_auth_without_tls_on_587_is_refused(server):
    code, output = swaks(server, "submission", "--auth", "PLAIN", *credentials())
    assert code == 28, f"swaks exit {code} (28 = AUTH failed/unavailable):\n{output}"
    # Trying anyway, without AUTH, gets the mail refused by the server itself.
    code, output = swaks(server, "submission", "--auth-optional", "PLAIN", *credentials())
    assert code == 23, f"swaks exit {code} (23 = MAIL refused):\n{output}"
    assert "<~* 530" in output or "<** 530" in output, output
    assert server.mail_list(BOB) == []
