"""fetchmail, verifying the server certificate against the generated CA, retrieves mail over
POP3S and IMAPS into an MDA: every message arrives once, byte for byte as stored, and is
removed from the server afterwards."""

import os
import shutil
import subprocess

import pytest

from conftest import PASSWORDS, split_trace
from mailread import BOB, READING_CONFIG, SAMPLES, deliver, stored

FETCHMAIL_TIMEOUT = 60
PROTOCOLS = {"pop3s": "POP3", "imaps": "IMAP"}
# An MDA that keeps each message in its own file, so the test can count them.
MDA = '#!/bin/sh\nexec cat > "$1/$(date +%s%N).$$"\n'


@pytest.fixture
def server(make_server):
    return make_server(config=READING_CONFIG)


def fetchmail(server, tmp_path, listener, cafile=None):
    """Runs fetchmail once for bob; returns (the CompletedProcess, [delivered messages])."""
    assert shutil.which("fetchmail"), "fetchmail is not installed: run scripts/test (it installs it)"
    home = tmp_path / f"fetchmail-{listener}"
    out = home / "delivered"
    out.mkdir(parents=True)
    mda = home / "mda.sh"
    mda.write_text(MDA)
    mda.chmod(0o755)
    rc = home / "fetchmailrc"
    # `invisible`: no Received header of fetchmail's own; `no rewrite`, `no stripcr`:
    # deliver the bytes as retrieved, CRLF line endings included.
    rc.write_text(
        "set no syslog\nset invisible\n"
        f"poll localhost via 127.0.0.1 with proto {PROTOCOLS[listener]} service {server.ports[listener]}\n"
        f'  user "{BOB}" there with password "{PASSWORDS[BOB]}" is "{os.environ.get("USER", "root")}" here\n'
        f'  ssl sslcertck sslcertfile "{cafile or server.ca_path}" sslcommonname localhost\n'
        f'  mda "{mda} {out}"\n'
        "  no rewrite\n  no stripcr\n")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home))
    run = subprocess.run(["fetchmail", "-f", str(rc), "--idfile", str(home / "ids"), "-v"],
                         capture_output=True, timeout=FETCHMAIL_TIMEOUT, env=env, cwd=home)
    delivered = [path.read_bytes() for path in sorted(out.iterdir())]
    return run, delivered


def output(run):
    """fetchmail's whole output, without the progress dots it prints while reading."""
    text = run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")
    return "\n".join(line for line in text.splitlines() if not line.startswith("*"))


@pytest.mark.parametrize("listener", PROTOCOLS)
def test_fetchmail_retrieves_every_message_exactly_over_verified_tls(server, tmp_path, listener):
    sent = [make() for make in SAMPLES.values()]
    for data in sent:
        deliver(server, data)
    on_server = [data for _, data in stored(server, BOB)]
    for stored_bytes, sent_bytes in zip(on_server, sent):
        split_trace(stored_bytes, sent_bytes)

    run, delivered = fetchmail(server, tmp_path, listener)
    assert run.returncode == 0, output(run)
    assert "SSL/TLS: using protocol TLSv1." in output(run), output(run)
    assert len(delivered) == 3, f"{len(delivered)} messages delivered\n{output(run)}"
    assert sorted(delivered) == sorted(on_server), "delivered bytes differ from the stored ones"
    assert server.mail_list(BOB) == [], "fetchmail's deletions did not reach the server"

    again, delivered_again = fetchmail(server, tmp_path / "again", listener)
    assert again.returncode == 1, f"fetchmail found mail the second time\n{output(again)}"
    assert delivered_again == []


@pytest.mark.parametrize("listener", PROTOCOLS)
def test_fetchmail_refuses_a_certificate_the_given_ca_did_not_sign(server, tmp_path, listener):
    deliver(server, SAMPLES["dot-leading-lines"]())
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca),
                    "-subj", "/CN=some other CA", "-days", "2"],
                   check=True, capture_output=True, timeout=30)
    run, delivered = fetchmail(server, tmp_path, listener, cafile=other_ca)
    assert run.returncode not in (0, 1), f"fetchmail trusted an unverified certificate\n{output(run)}"
    assert "certificate verif" in output(run).lower(), (
        f"fetchmail failed for another reason than the certificate\n{output(run)}")
    assert delivered == []
    assert len(server.mail_list(BOB)) == 1
