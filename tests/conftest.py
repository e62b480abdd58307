"""The real server, started per test on ephemeral loopback ports with a temporary data dir.

`server` is a running server with alice@ and bob@example.test; `make_server(...)` builds one
with any config the test needs. Every server started here is stopped with SIGTERM at
teardown and must exit 0, unless the test killed it on purpose.
"""

import json
import os
import queue
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PASSWORDS = {
    "alice@example.test": "alice-secret-1",
    "bob@example.test": "bob-secret-2",
}
LISTENER_KEYS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
STARTUP_TIMEOUT = 30
STOP_TIMEOUT = 40
CLI_TIMEOUT = 30


def sealpost_bin() -> str:
    path = os.environ.get("SEALPOST_BIN") or str(REPO / "target" / "debug" / "sealpost")
    if not os.access(path, os.X_OK):
        pytest.fail(f"sealpost binary not found at {path}: run `cargo build --bins` or set SEALPOST_BIN")
    return path


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(config: dict) -> str:
    """Top-level scalars first, then one [table] per dict value (one level is all we need)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def split_trace(stored: bytes, sent: bytes) -> bytes:
    """Asserts `stored` is trace headers followed by exactly `sent`; returns the trace."""
    assert stored.endswith(sent), (
        f"stored message does not end with the sent bytes\n"
        f"stored (first 600 bytes): {stored[:600]!r}\nsent (first 300 bytes): {sent[:300]!r}"
    )
    trace = stored[: len(stored) - len(sent)]
    assert trace.startswith(b"Received: from"), f"no Received header first: {trace!r}"
    assert trace.endswith(b"\r\n"), f"trace headers do not end with CRLF: {trace!r}"
    for line in trace[:-2].split(b"\r\n"):
        assert line.startswith(b"\t") or (b":" in line and not line.startswith(b" ")), (
            f"trace line is not a header field or a tab continuation: {line!r}"
        )
    return trace


def received_header(stored: bytes) -> str:
    """The first Received header, unfolded."""
    lines = stored.split(b"\r\n")
    assert lines[0].startswith(b"Received: from"), f"stored message starts {stored[:200]!r}"
    header = [lines[0]]
    for line in lines[1:]:
        if not line.startswith((b"\t", b" ")):
            break
        header.append(line)
    return b" ".join(part.strip() for part in header).decode("utf-8", "replace")


class Server:
    def __init__(self, root: Path, config: dict, accounts: dict):
        self.root = root
        self.data_dir = root / "data"
        self.config_path = root / "sealpost.toml"
        self.config = merge({"data_dir": str(self.data_dir)}, config)
        self.accounts = dict(accounts)
        self.proc = None
        self.ports = {}
        self.stdout_lines = []
        self.ca_path = None
        self.stderr_path = None
        self.exit_code = None
        self.expect_clean_exit = True
        self._starts = 0
        self.write_config()

    # ---- configuration and CLI ----

    def write_config(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(to_toml(self.config))

    def cli(self, *args, input=None, check=True, timeout=CLI_TIMEOUT):
        result = subprocess.run(
            [sealpost_bin(), "--config", str(self.config_path), *args],
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, (
                f"sealpost {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout.decode(errors='replace')}\n"
                f"stderr: {result.stderr.decode(errors='replace')}"
            )
        return result

    def add_account(self, address, password):
        result = self.cli("account", "add", address, input=password + "\n")
        self.accounts[address] = password
        return result

    def mail_list(self, address, mailbox=None):
        """[(uid, size, message_id or None)] for the mailbox (default INBOX)."""
        args = ["mail", "list", address] + (["--mailbox", mailbox] if mailbox else [])
        out = self.cli(*args).stdout.decode()
        entries = []
        for line in out.splitlines():
            if not line.strip():
                continue
            parts = line.split()
            assert len(parts) == 3, f"mail list line not `<uid> <size> <message-id>`: {line!r}"
            uid, size, msgid = parts
            entries.append((int(uid), int(size), None if msgid == "-" else msgid))
        return entries

    def mail_cat(self, address, uid, mailbox=None) -> bytes:
        args = ["mail", "cat", address, str(uid)] + (["--mailbox", mailbox] if mailbox else [])
        return self.cli(*args).stdout

    def messages(self, address):
        return [self.mail_cat(address, uid) for uid, _, _ in self.mail_list(address)]

    def queue_list(self):
        """The queue as [id, sender, recipients joined by commas, size] per entry."""
        entries = json.loads(self.cli("queue", "list", "--json").stdout)
        return [[str(e["id"]), e["sender"] or "<>",
                 ",".join(r["address"] for r in e["recipients"]), str(e["size"])]
                for e in entries]

    # ---- process ----

    def start(self, wait_for_signals=True):
        """Starts `serve` and parses its ready lines. With `wait_for_signals`, also waits until its signal
        handlers are installed: the server announces readiness before that (see
        test_serve.py::test_sigterm_right_after_ready_lines_exits_0)."""
        for address, password in self.accounts.items():
            if self._starts == 0:
                self.cli("account", "add", address, input=password + "\n")
        self._starts += 1
        self.stderr_path = self.root / f"stderr-{self._starts}.log"
        stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sealpost_bin(), "--config", str(self.config_path), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        stderr.close()
        self.exit_code = None
        self.expect_clean_exit = True
        self.ports = {}
        self.stdout_lines = []
        self.ca_path = None
        lines = queue.Queue()

        def pump(stream):
            for raw in stream:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                pytest.fail(f"server did not finish starting in {STARTUP_TIMEOUT}s; stdout so far: "
                            f"{self.stdout_lines}\nstderr: {self.stderr()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=10)
                self.exit_code = code
                pytest.fail(f"server exited ({code}) while starting; stdout: {self.stdout_lines}\n"
                            f"stderr: {self.stderr()}")
            self.stdout_lines.append(line)
            words = line.split()
            if line.startswith("clients must trust the generated CA certificate "):
                self.ca_path = Path(line[len("clients must trust the generated CA certificate "):].strip())
                break
            if line.strip() == "serving the configured certificate":
                break
            if len(words) >= 2 and words[0] in LISTENER_KEYS and ":" in words[1]:
                host, port = words[1].rsplit(":", 1)
                self.ports[words[0]] = int(port)
        if wait_for_signals:
            self.wait_for_signal_handlers()
        return self

    def wait_for_signal_handlers(self, timeout=10):
        """Waits until the process catches SIGTERM, SIGINT and SIGHUP (Linux: SigCgt in
        /proc/PID/status), so a signal sent by the test is handled, not fatal."""
        wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGHUP - 1))
        deadline = time.monotonic() + timeout
        while True:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
            if caught & wanted == wanted:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"server does not handle SIGTERM/SIGINT/SIGHUP {timeout}s after starting "
                            f"(SigCgt {caught:#x})")
            time.sleep(0.005)

    def stderr(self) -> str:
        if self.stderr_path and self.stderr_path.exists():
            return self.stderr_path.read_text(errors="replace")[-4000:]
        return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        self.exit_code = self.proc.wait(timeout=timeout)
        return self.exit_code

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not exit within {STOP_TIMEOUT}s of SIGTERM")

    def kill(self):
        """SIGKILL: a crash, not a clean stop."""
        self.expect_clean_exit = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.exit_code = self.proc.wait(timeout=10)

    def restart(self, wait_for_signals=True):
        if self.proc is not None and self.exit_code is None:
            code = self.stop()
            assert code == 0, f"server exited {code} on SIGTERM; stderr: {self.stderr()}"
        return self.start(wait_for_signals=wait_for_signals)

    # ---- clients ----

    @property
    def host(self):
        return "127.0.0.1"

    def tls_context(self, cafile=None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(cafile or self.ca_path))
        return ctx

    @property
    def generated_tls_dir(self) -> Path:
        return self.data_dir / "tls"


DEFAULT_CONFIG = {
    "hostname": "mail.example.test",
    "local_domains": ["example.test"],
    "listeners": {
        "smtp": "127.0.0.1:0",
        "submission": "127.0.0.1:0",
        "submissions": "127.0.0.1:0",
    },
}


@pytest.fixture(scope="session")
def loopback_dns():
    """A real DNS server on loopback with no zones (every name NXDOMAIN), so port 25's
    SPF/DKIM/DMARC lookups never leave the machine; tests that need records start
    their own `TestDns` and set [dns] nameservers themselves."""
    from testdns import TestDns

    dns = TestDns({})
    yield dns.address
    dns.stop()


@pytest.fixture
def make_server(tmp_path, loopback_dns):
    servers = []
    defaults = merge(DEFAULT_CONFIG, {"dns": {"nameservers": [loopback_dns]}})

    def factory(config=None, accounts=None, start=True, name=None, wait_for_signals=True):
        root = tmp_path / (name or f"server{len(servers)}")
        server = Server(root, merge(defaults, config or {}),
                        PASSWORDS if accounts is None else accounts)
        servers.append(server)
        if start:
            server.start(wait_for_signals=wait_for_signals)
        return server

    yield factory

    failures = []
    for server in servers:
        if server.proc is None:
            continue
        if server.exit_code is None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.exit_code = server.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=10)
                failures.append(f"{server.root.name}: did not exit within {STOP_TIMEOUT}s of SIGTERM")
                continue
        elif server.exit_code is None:
            server.exit_code = server.proc.returncode
        if server.expect_clean_exit and server.exit_code != 0:
            failures.append(f"{server.root.name}: exited {server.exit_code} after SIGTERM; "
                            f"stderr: {server.stderr()}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def server(make_server):
    return make_server()
