"""`sealpost serve` startup, shutdown and the `account` commands."""

import base64
import os
import signal
import socket
import subprocess
import threading
import time

from conftest import PASSWORDS, sealpost_bin, split_trace
from mail import message, smtp
from smtp_wire import Closed, SmtpWire


def serve_expecting_failure(server, timeout=20):
    """Runs `serve`, which must exit on its own (non-zero) within `timeout`."""
    try:
        result = subprocess.run([sealpost_bin(), "--config", str(server.config_path), "serve"],
                                capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"serve kept running with a bad setup; stdout: {e.stdout!r}") from None
    assert result.returncode != 0, f"serve exited 0; stdout: {result.stdout!r}"
    return result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def auth_code(server, user, password):
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return client.docmd("AUTH", "PLAIN " + token)[0]


def free_port_held():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_unknown_config_key_is_an_error_naming_the_key(make_server):
    server = make_server({"frobnicate": 1}, accounts={}, start=False)
    _, stderr = serve_expecting_failure(server)
    assert "frobnicate" in stderr, stderr

    nested = make_server({"smtp": {"max_widgets": 3}}, accounts={}, start=False)
    _, stderr = serve_expecting_failure(nested)
    assert "max_widgets" in stderr, stderr


def test_listener_port_in_use_stops_startup_with_advice_and_serves_nothing(make_server):
    busy = free_port_held()
    try:
        port = busy.getsockname()[1]
        server = make_server({"listeners": {"submissions": f"127.0.0.1:{port}"}}, start=False)
        stdout, stderr = serve_expecting_failure(server)
        assert "cannot bind" in stderr, stderr
        assert f"127.0.0.1:{port}" in stderr, stderr
        assert "[listeners] submissions" in stderr, f"no advice on what to change: {stderr}"
        # Whatever was bound before the failure is gone with the process.
        for line in stdout.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("smtp", "submission") and ":" in words[1]:
                other = int(words[1].rsplit(":", 1)[1])
                try:
                    socket.create_connection(("127.0.0.1", other), timeout=2).close()
                    raise AssertionError(f"{words[0]} port {other} still accepts connections")
                except ConnectionRefusedError:
                    pass
    finally:
        busy.close()


def test_missing_configured_certificate_refuses_to_start_naming_the_path(make_server, tmp_path):
    missing = tmp_path / "nowhere" / "fullchain.pem"
    server = make_server({"tls": {"cert": str(missing), "key": str(tmp_path / "nowhere" / "key.pem")}},
                         accounts={}, start=False)
    _, stderr = serve_expecting_failure(server)
    assert str(missing) in stderr, stderr
    assert not (server.data_dir / "tls").exists(), "generated a certificate instead of refusing"


def test_disabled_listener_is_not_listed_or_served(make_server):
    server = make_server({"listeners": {"submission": ""}})
    keys = [line.split()[0] for line in server.stdout_lines if line.split()]
    assert "submission" not in keys, server.stdout_lines
    assert "smtp" in keys and "submissions" in keys, server.stdout_lines
    assert "submission" not in server.ports
    assert server.stdout_lines[-1].startswith("clients must trust the generated CA certificate "), \
        server.stdout_lines


def test_sigterm_lets_in_flight_data_finish_then_exits_0(make_server):
    server = make_server({"limits": {"shutdown_grace": 20}})
    sent = message(body="first half\r\n" * 50 + "second half\r\n" * 50)
    half = len(sent) // 2
    port = server.ports["smtp"]
    with SmtpWire(port) as wire:
        wire.greeting()
        wire.ehlo()
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(sent[:half])
        server.signal(signal.SIGTERM)
        # The signal has been handled once the listener stops accepting.
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting connections 10s after SIGTERM"
            time.sleep(0.05)
        assert server.proc.poll() is None, "exited with a DATA transfer in flight"
        wire.send(sent[half:] + b".\r\n")
        reply = wire.read_reply()
        assert reply.code == 250, reply
        try:
            wire.command("QUIT")
        except Exception:
            pass
    assert server.wait(timeout=15) == 0, server.stderr()
    entries = server.mail_list("bob@example.test")
    assert len(entries) == 1, entries
    split_trace(server.mail_cat("bob@example.test", entries[0][0]), sent)


def test_sigterm_closes_idle_sessions_with_421_at_once(server):
    with SmtpWire(server.ports["smtp"]) as wire:
        wire.greeting()
        wire.ehlo()
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        reply = wire.read_reply()
        assert reply.code == 421, reply
        assert wire.read_until_closed() == b""
    assert server.wait(timeout=15) == 0
    assert time.monotonic() - started < 5, "an idle session held up the shutdown"


def test_sigterm_gives_up_on_unfinished_data_after_shutdown_grace(make_server):
    server = make_server({"limits": {"shutdown_grace": 1}})
    with SmtpWire(server.ports["smtp"]) as wire:
        wire.greeting()
        wire.ehlo()
        assert wire.command("MAIL FROM:<sender@remote.test>").code == 250
        assert wire.command("RCPT TO:<bob@example.test>").code == 250
        assert wire.command("DATA").code == 354
        wire.send(message(body="never finished\r\n"))
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0, server.stderr()
        assert time.monotonic() - started < 10, "waited far longer than shutdown_grace = 1"
    assert server.mail_list("bob@example.test") == []


def test_sigint_stops_the_server_with_exit_0(server):
    server.signal(signal.SIGINT)
    assert server.wait(timeout=15) == 0, server.stderr()


def test_account_add_list_passwd_remove_round_trip(server, tmp_path):
    carol = "carol@example.test"
    added = server.cli("account", "add", carol, input="first-password\n").stdout.decode()
    assert carol in added, added
    listed = server.cli("account", "list").stdout.decode().split()
    assert sorted(listed) == sorted([carol, *PASSWORDS]), listed
    assert auth_code(server, carol, "first-password") == 235

    password_file = tmp_path / "new-password"
    password_file.write_text("second-password\n")
    server.cli("account", "passwd", carol, "--password-file", str(password_file))
    assert auth_code(server, carol, "first-password") == 535
    assert auth_code(server, carol, "second-password") == 235

    server.cli("account", "remove", carol)
    assert carol not in server.cli("account", "list").stdout.decode().split()
    assert auth_code(server, carol, "second-password") == 535


def test_account_in_a_new_domain_makes_the_domain_local(server):
    dan = "dan@newdomain.test"
    out = server.cli("account", "add", dan, input="dans-password\n").stdout.decode()
    assert "newdomain.test is now a local domain" in out, out
    sent = message(to=dan)
    with smtp(server.ports["smtp"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert client.sendmail("sender@remote.test", [dan], sent) == {}
        client.mail("sender@remote.test")
        code, text = client.rcpt("nobody@newdomain.test")
        assert code == 550, (code, text)
    entries = server.mail_list(dan)
    assert len(entries) == 1, entries
    split_trace(server.mail_cat(dan, entries[0][0]), sent)


def signal_at_ready_line(server, sig):
    """Starts `serve` and sends `sig` the instant the last ready line arrives. The server
    runs niced on the test's CPU, so the test runs first when that line wakes it up."""
    cpu = min(os.sched_getaffinity(0))
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        server.proc = subprocess.Popen(
            ["nice", "-n", "19", sealpost_bin(), "--config", str(server.config_path), "serve"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        ports = {}
        for raw in server.proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(("clients must trust", "serving the configured")):
                server.proc.send_signal(sig)
                break
            words = line.split()
            if len(words) >= 2 and ":" in words[1]:
                ports[words[0]] = int(words[1].rsplit(":", 1)[1])
        else:
            raise AssertionError(f"serve exited before its ready lines ({server.proc.wait(10)})")
    finally:
        os.sched_setaffinity(0, saved)
    threading.Thread(target=server.proc.stdout.read, daemon=True).start()
    server.ports = ports
    return server


def test_sigterm_right_after_ready_lines_exits_0(make_server):
    # A supervisor may stop the server the moment it says it is ready.
    for attempt in range(5):
        server = make_server(accounts={}, name=f"attempt{attempt}", start=False)
        signal_at_ready_line(server, signal.SIGTERM)
        code = server.wait(timeout=15)
        server.expect_clean_exit = False  # asserted here, not again at teardown
        assert code == 0, f"attempt {attempt}: exit {code} for SIGTERM right after the ready lines"


def test_sighup_right_after_ready_lines_keeps_serving(make_server):
    # A certificate deploy hook may fire while the server is starting.
    for attempt in range(5):
        server = make_server(accounts={}, name=f"attempt{attempt}", start=False)
        signal_at_ready_line(server, signal.SIGHUP)
        try:
            with SmtpWire(server.ports["smtp"]) as wire:
                wire.greeting()
                assert wire.command("QUIT").code == 221
        except (OSError, Closed) as e:
            server.expect_clean_exit = False  # asserted here, not again at teardown
            code = server.wait(timeout=10)
            raise AssertionError(f"attempt {attempt}: SIGHUP killed the server (exit {code}): {e!r}")
