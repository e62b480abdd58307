"""The loopback world outbound delivery is tested in (issue 4, "Tests (real parts on loopback)").

Everything is real and runs on loopback addresses of its own:

    127.0.0.1      the sending sealpost (one per test, its queue worker under test)
    127.0.0.2:P    the receiving sealpost, `mx.receiver.test`, every recipient domain local
    127.0.0.3:P    Debian's Postfix, `mx.postfix.test`, mail for pfx.test into a Maildir
    127.0.0.4:P    a man in the middle in front of .2 that strips STARTTLS (`mitm.receiver.test`)
    127.0.0.5:P    the same, switchable between a plain relay and stripping (`memory.receiver.test`)
    127.0.0.6:P    a receiver that answers the first DATA with 451 (`flaky.receiver.test`)
    127.0.0.7:Q    the MTA-STS policy server, https://mta-sts.<domain>:Q/.well-known/mta-sts.txt
    127.0.0.1:D    sealpost-testdns serving every zone below

The sender reaches every MX on one port (`[delivery] port = P`), so P is picked free on
every receiver address. Certificates (the receivers', the MTA-STS host's) come from one
test CA that the sender trusts through `[delivery] extra_ca`.

Recipient domains, by what they exercise:

    plain.test            MX mx.receiver.test; no policy (opportunistic, verifies anyway)
    pfx.test              MX mx.postfix.test (Postfix)
    strip-sts.test        MX mitm.receiver.test; MTA-STS enforce
    strip-none.test       MX mitm.receiver.test; no policy
    mismatch-sts.test     MX othername.receiver.test (not in the certificate); MTA-STS enforce
    mismatch-testing.test the same MX; MTA-STS testing; TLS-RPT to tlsrpt@plain.test
    memory.test           MX memory.receiver.test; no policy (downgrade memory)
    flaky.test            MX flaky.receiver.test
    nullmx.test           MX 0 . (RFC 7505)
    dane-good.test        DNSSEC-signed; MX with TLSA 3 1 1 of the receiver's certificate
    dane-bad.test         DNSSEC-signed; MX with a TLSA record that matches nothing
    dane-bogus.test       DNSSEC-signed; the MX's TLSA record has a signature that fails
"""

import asyncio
import email
import email.policy
import hashlib
import http.server
import imaplib
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import STOP_TIMEOUT, Server, toml_value
from pki import CA
from testdns import TestDns

TIMEOUT = 15

SENDER_IP = "127.0.0.1"
RECEIVER_IP = "127.0.0.2"
POSTFIX_IP = "127.0.0.3"
MITM_IP = "127.0.0.4"
MEMORY_IP = "127.0.0.5"
FLAKY_IP = "127.0.0.6"
STS_IP = "127.0.0.7"
MX_IPS = (RECEIVER_IP, POSTFIX_IP, MITM_IP, MEMORY_IP, FLAKY_IP)

RECEIVER_MX = "mx.receiver.test"
POSTFIX_MX = "mx.postfix.test"
SENDER_DOMAIN = "sender.test"
ALICE = f"alice@{SENDER_DOMAIN}"
ALICE_PASSWORD = "alice-sender-secret-1"
RECEIVER_PASSWORD = "receiver-secret-1"

# Local at the receiving sealpost, each with bob@ (and a few more accounts below).
SEALPOST_DOMAINS = ("plain.test", "strip-sts.test", "strip-none.test", "mismatch-sts.test",
                    "mismatch-testing.test", "memory.test", "flaky.test", "dane-good.test",
                    "dane-bad.test", "dane-bogus.test")
EXTRA_ACCOUNTS = ("bulk@plain.test", "exact@plain.test", "tlsrpt@plain.test", "dsn@plain.test")
SIGNED_DOMAINS = ("dane-good.test", "dane-bad.test", "dane-bogus.test")
# Signatures that do not verify: a secure MX whose TLSA answer is bogus.
BOGUS_NAMES = ("_25._tcp.mx.dane-bogus.test",)
POSTFIX_DOMAIN = "pfx.test"
POSTFIX_USERS = ("bob", "bulk")

STS_POLICIES = {
    "strip-sts.test": "version: STSv1\nmode: enforce\nmx: mitm.receiver.test\nmax_age: 86400\n",
    "mismatch-sts.test": "version: STSv1\nmode: enforce\nmx: othername.receiver.test\nmax_age: 86400\n",
    "mismatch-testing.test": "version: STSv1\nmode: testing\nmx: othername.receiver.test\nmax_age: 86400\n",
}
TLSRPT_RUA = "tlsrpt@plain.test"


# ---------------------------------------------------------------- ports and config

def port_is_free(ip, port) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def common_free_port(ips=MX_IPS) -> int:
    """A TCP port free on every address in `ips` (the sender uses one port for every MX)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((ips[0], 0))
            port = probe.getsockname()[1]
        if all(port_is_free(ip, port) for ip in ips):
            return port
    raise RuntimeError(f"no port free on all of {ips}")


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def to_toml(config: dict, prefix=()) -> str:
    """TOML for nested tables too (`[delivery.domains."example.org"]`): conftest's writer
    knows only one level."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            path = prefix + (toml_key(name),)
            if any(not isinstance(v, dict) for v in table.values()) or not table:
                lines.append(f"\n[{'.'.join(path)}]")
            body = to_toml(table, path).rstrip("\n")
            if body:
                lines.append(body)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- sealpost instances

DELIVERY_LINE = re.compile(r"delivery (delivered|deferred|bounced) id=")
LINE_KEYS = ("id", "domain", "mx", "ip", "tls", "cipher", "policy", "verified", "check", "reason", "reply")


def parse_delivery_line(line: str) -> dict:
    """`delivery <outcome> id=.. domain=.. ... reason="..." reply="..."` as a dict (the
    contract's one line per attempt). Values run to the next known ` key=`, so an unquoted
    value with a space (`policy=mta-sts enforce`) parses too."""
    match = DELIVERY_LINE.search(line)
    assert match, f"not a delivery line: {line!r}"
    rest = line[match.start():]
    fields = {"outcome": match.group(1)}
    keys = "|".join(LINE_KEYS)
    marks = list(re.finditer(rf"(?:^|\s)({keys})=", rest))
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(rest)
        value = rest[mark.end():end].strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[mark.group(1)] = value
    # One token either way: `mta-sts enforce` (PolicyKind::as_str) is logged `mta-sts-enforce`.
    if "policy" in fields:
        fields["policy"] = fields["policy"].replace(" ", "-")
    return fields


class DeliveryServer(Server):
    """A sealpost `serve` on its own loopback address, with nested config tables and
    helpers to read its delivery log lines and queue."""

    def __init__(self, root: Path, config: dict, accounts: dict, ip=SENDER_IP):
        self.ip = ip
        super().__init__(root, config, accounts)

    def write_config(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(to_toml(self.config))

    @property
    def host(self):
        return self.ip

    def set_config(self, **tables):
        """Merges tables into the config and rewrites the file (takes effect on restart)."""
        from conftest import merge
        self.config = merge(self.config, tables)
        self.write_config()

    def log_text(self) -> str:
        """Standard error of every start so far."""
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.root.glob("stderr-*.log"),
                                       key=lambda p: int(p.stem.split("-")[1])))

    def delivery_lines(self, domain=None, outcome=None):
        lines = [parse_delivery_line(line) | {"line": line}
                 for line in self.log_text().splitlines() if DELIVERY_LINE.search(line)]
        return [fields for fields in lines
                if (domain is None or fields.get("domain") == domain)
                and (outcome is None or fields["outcome"] == outcome)]

    def wait_for_delivery_line(self, domain, outcome, timeout=30, count=1):
        """The `count`th delivery line for `domain` with `outcome`; fails with the log."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.delivery_lines(domain, outcome)
            if len(lines) >= count:
                return lines[count - 1]
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"sender exited ({self.proc.returncode}) waiting for `delivery {outcome}` "
                            f"to {domain}\nlog:\n{self.log_text()[-6000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no `delivery {outcome}` line for {domain} within {timeout}s; "
                            f"delivery lines: {[l['line'] for l in self.delivery_lines()]}\n"
                            f"log:\n{self.log_text()[-6000:]}")
            time.sleep(0.1)

    def start_at_offset(self, offset: str):
        """Starts `serve` with its clock moved by `offset` (libfaketime, e.g. "+1d"): how a
        test reaches the end of a UTC day (TLS-RPT reports cover whole days)."""
        library = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
        if library is None:
            pytest.fail("libfaketime is not installed: apt-get install faketime")
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")}
        os.environ.update(LD_PRELOAD=str(library), FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1")
        try:
            return self.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def queue_json(self):
        import json
        return json.loads(self.cli("queue", "list", "--json").stdout or b"[]")


def sigterm_and_wait(server: Server):
    """SIGTERM a server and return its exit code (killing it after STOP_TIMEOUT)."""
    if server.proc is None or server.exit_code is not None:
        return server.exit_code
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        server.exit_code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.exit_code = server.proc.wait(timeout=10)
        return f"did not exit within {STOP_TIMEOUT}s of SIGTERM"
    return server.exit_code


# ---------------------------------------------------------------- the MTA-STS policy server

class MtaStsServer:
    """https://mta-sts.<domain>:<port>/.well-known/mta-sts.txt, one policy per Host, over
    TLS with a certificate from the test CA. `fetches` counts requests per host."""

    def __init__(self, ip, cert, key, policies: dict):
        self.policies = {f"mta-sts.{d}": text.encode() for d, text in policies.items()}
        self.fetches = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "").split(":")[0].lower()
                outer.fetches[host] = outer.fetches.get(host, 0) + 1
                body = outer.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.port = self.httpd.server_address[1]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- the SMTP man in the middle

class SmtpProxy:
    """An SMTP relay on ip:port in front of `upstream` (ip, port), run by asyncio in a
    thread of its own.

    mode "relay": bytes pass untouched both ways (STARTTLS runs end to end).
    mode "strip": the EHLO reply loses the keywords in `strip` (STARTTLS, and CHUNKING so
    the client uses DATA, whose end this proxy can see); a STARTTLS command is answered
    502 here and never reaches the receiver.
    `fail_data`: that many sessions have their message swallowed and answered
    `451 4.4.2` at the end of DATA; the receiver's side of the connection is then closed
    mid-DATA, so it stores nothing.
    """

    def __init__(self, ip, port, upstream, mode="strip", strip=("STARTTLS", "CHUNKING"), fail_data=0):
        self.ip, self.port, self.upstream = ip, port, upstream
        self.mode = mode
        self.strip = {k.upper() for k in strip}
        self.fail_data = fail_data
        self.sessions = 0
        self.events = []
        self.open_writers = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"proxy on {ip}:{port} did not start")
        if self.error:
            raise self.error

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.error = None
        try:
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._session, self.ip, self.port, reuse_address=True))
        except OSError as error:
            self.error = error
            ready.set()
            return
        ready.set()
        self.loop.run_forever()

    def stop(self):
        def close():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)

    def set_mode(self, mode):
        """Switches the mode for new sessions and cuts the open ones, so a client's cached
        connection cannot carry on past the switch (as an attacker would start: by
        breaking the connection in place)."""
        self.mode = mode

        def cut():
            for writer in list(self.open_writers):
                writer.transport.abort()
            self.open_writers.clear()
        self.loop.call_soon_threadsafe(cut)
        time.sleep(0.1)

    async def _session(self, client_r, client_w):
        self.sessions += 1
        number = self.sessions
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError as error:
            self.events.append((number, f"upstream unreachable: {error}"))
            client_w.close()
            return
        self.open_writers.update((client_w, up_w))
        if self.mode == "relay":
            self.events.append((number, "relay"))
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w),
                                 return_exceptions=True)
            return
        fail = number <= self.fail_data
        state = {"after_data": False, "content": False, "detached": False}
        await asyncio.gather(self._client_to_server(number, client_r, client_w, up_w, state, fail),
                             self._server_to_client(up_r, client_w, state),
                             return_exceptions=True)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _client_to_server(self, number, client_r, client_w, up_w, state, fail):
        try:
            while line := await client_r.readline():
                if state["content"]:
                    if line == b".\r\n":
                        state["content"] = False
                        if fail:
                            self.events.append((number, "451 at end of DATA"))
                            state["detached"] = True
                            up_w.close()
                            client_w.write(b"451 4.4.2 flaky receiver: please try again later\r\n")
                            await client_w.drain()
                            continue
                    if not fail:
                        up_w.write(line)
                    continue
                command = line.strip().upper()
                if state["detached"]:
                    reply = b"221 2.0.0 bye\r\n" if command == b"QUIT" else b"250 2.0.0 OK\r\n"
                    client_w.write(reply)
                    await client_w.drain()
                    if command == b"QUIT":
                        break
                    continue
                if command == b"STARTTLS" and "STARTTLS" in self.strip:
                    self.events.append((number, "STARTTLS refused"))
                    client_w.write(b"502 5.5.1 STARTTLS not available\r\n")
                    await client_w.drain()
                    continue
                if command == b"DATA":
                    state["after_data"] = True
                up_w.write(line)
                await up_w.drain()
        finally:
            if not state["detached"]:
                up_w.close()
            client_w.close()

    async def _server_to_client(self, up_r, client_w, state):
        reply = []
        while line := await up_r.readline():
            reply.append(line)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            lines, reply = reply, []
            if lines[0].startswith(b"250") and len(lines) > 1:
                kept = [l for l in lines
                        if (l[4:].strip().split(b" ")[0].decode(errors="replace").upper() not in self.strip)]
                kept = [l[:3] + b"-" + l[4:] for l in kept[:-1]] + [kept[-1][:3] + b" " + kept[-1][4:]]
                lines = kept
            if state["after_data"] and lines[-1].startswith(b"354"):
                state["after_data"] = False
                state["content"] = True
            if state["detached"]:
                return
            client_w.write(b"".join(lines))
            await client_w.drain()
        if not state["detached"]:
            client_w.close()


# ---------------------------------------------------------------- Debian's Postfix as an MX

class PostfixMx:
    """Debian's Postfix receiving mail for one domain on ip:port, STARTTLS offered with a
    certificate from the test CA, mail for <user>@<domain> into Maildirs; its config,
    queue and mail live in a private directory (as scripts/bench-postfix does), the
    machine's /etc/postfix is only read."""

    VMAIL_UID = 5000

    def __init__(self, ip, port, hostname, domain, users, cert, key):
        require_postfix()
        # Not under pytest's tmp dir: that is mode 700, and Postfix's daemons run as the
        # postfix user and uid VMAIL_UID.
        self.dir = Path(tempfile.mkdtemp(prefix="sealpost-postfix-mx-"))
        self.dir.chmod(0o755)
        self.etc, self.queue, self.mail = self.dir / "etc", self.dir / "queue", self.dir / "mail"
        self.ip, self.port, self.domain = ip, port, domain
        try:
            self._configure_and_start(hostname, domain, users, cert, key)
        except BaseException:
            self.stop()
            raise

    def _configure_and_start(self, hostname, domain, users, cert, key):
        ip, port = self.ip, self.port
        for d in (self.etc, self.queue, self.mail, self.dir / "data", self.dir / "tls"):
            d.mkdir()
        tls_cert, tls_key = self.dir / "tls" / "cert.pem", self.dir / "tls" / "key.pem"
        shutil.copy(cert, tls_cert)
        shutil.copy(key, tls_key)
        tls_key.chmod(0o600)
        shutil.copy("/etc/postfix/main.cf", self.etc)
        shutil.copy("/etc/postfix/master.cf", self.etc)
        self.postconf("-e",
                      f"config_directory = {self.etc}", f"queue_directory = {self.queue}",
                      f"data_directory = {self.dir / 'data'}",
                      f"maillog_file = {self.dir / 'maillog'}", f"maillog_file_prefixes = {self.dir}",
                      f"myhostname = {hostname}", "mydomain = postfix.test", "mydestination =",
                      # Postfix accepts only interface addresses here; 127.0.0.3 is
                      # reached through the master.cf listener below.
                      "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
                      "mynetworks = 127.0.0.1/32", "alias_maps =", "alias_database =", "relayhost =",
                      "smtpd_tls_security_level = may",
                      f"smtpd_tls_chain_files = {tls_key}, {tls_cert}",
                      "smtpd_tls_cert_file =", "smtpd_tls_key_file =",
                      "smtpd_tls_protocols = >=TLSv1.2", "smtpd_tls_loglevel = 1",
                      "smtpd_tls_received_header = yes",
                      "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
                      f"virtual_mailbox_domains = {domain}",
                      f"virtual_mailbox_base = {self.mail}",
                      f"virtual_mailbox_maps = texthash:{self.etc / 'vmailbox'}",
                      f"virtual_uid_maps = static:{self.VMAIL_UID}",
                      f"virtual_gid_maps = static:{self.VMAIL_UID}")
        subprocess.run(["postconf", "-c", str(self.etc), "-M#", "smtp/inet"], check=True)
        subprocess.run(["postconf", "-c", str(self.etc), "-F", "*/*/chroot = n"], check=True)
        with open(self.etc / "master.cf", "a") as master:
            master.write(f"{ip}:{port} inet n - n - - smtpd\n")
        (self.etc / "vmailbox").write_text(
            "".join(f"{user}@{domain} {domain}/{user}/\n" for user in users))
        os.chown(self.mail, self.VMAIL_UID, self.VMAIL_UID)
        shutil.chown(self.dir / "data", "postfix", "postfix")
        self.postfix("check")
        self.postfix("start")
        deadline = time.monotonic() + 20
        while not self.listening():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Postfix does not listen on {ip}:{port}; log:\n{self.log()}")
            time.sleep(0.1)

    def postconf(self, *args):
        subprocess.run(["postconf", "-c", str(self.etc), *args], check=True, capture_output=True)

    def postfix(self, *args):
        result = subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True, timeout=60)
        assert result.returncode == 0, f"postfix {' '.join(args)}: {result.stderr.decode(errors='replace')}"

    def listening(self) -> bool:
        try:
            socket.create_connection((self.ip, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace")[-6000:] if path.exists() else "(no maillog)"

    def messages(self, user):
        """The delivered messages of user@domain, as bytes (Maildir new/ and cur/)."""
        box = self.mail / self.domain / user
        files = sorted(list(box.glob("new/*")) + list(box.glob("cur/*")))
        return [f.read_bytes() for f in files]

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def require_postfix():
    if shutil.which("postfix") is None or shutil.which("postconf") is None:
        pytest.fail("Debian's Postfix is not installed: apt-get install postfix "
                    "(with debconf `postfix/main_mailer_type select No configuration`)")


# ---------------------------------------------------------------- DNS zones

def spki_sha256(cert_pem_path) -> str:
    """The SHA-256 of the first certificate's SubjectPublicKeyInfo (TLSA 3 1 1 data)."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert_pem_path), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def delivery_zones(tlsa_hex: str) -> dict:
    def sts(domain):
        return f'mta-sts A {STS_IP}\n_mta-sts TXT "v=STSv1; id=20260101T000000"\n'

    zones = {
        "receiver.test": (f"mx A {RECEIVER_IP}\n"
                          f"othername A {RECEIVER_IP}\n"
                          f"mitm A {MITM_IP}\n"
                          f"memory A {MEMORY_IP}\n"
                          f"flaky A {FLAKY_IP}\n"),
        "postfix.test": f"mx A {POSTFIX_IP}\n",
        "sender.test": f"@ MX 10 mail.sender.test.\nmail A {SENDER_IP}\n",
        "plain.test": f"@ MX 10 {RECEIVER_MX}.\n",
        POSTFIX_DOMAIN: f"@ MX 10 {POSTFIX_MX}.\n",
        "strip-sts.test": "@ MX 10 mitm.receiver.test.\n" + sts("strip-sts.test"),
        "strip-none.test": "@ MX 10 mitm.receiver.test.\n",
        "mismatch-sts.test": "@ MX 10 othername.receiver.test.\n" + sts("mismatch-sts.test"),
        "mismatch-testing.test": ("@ MX 10 othername.receiver.test.\n" + sts("mismatch-testing.test")
                                  + f'_smtp._tls TXT "v=TLSRPTv1; rua=mailto:{TLSRPT_RUA}"\n'),
        "memory.test": "@ MX 10 memory.receiver.test.\n",
        "flaky.test": "@ MX 10 flaky.receiver.test.\n",
        "nullmx.test": "@ MX 0 .\n",
        "dane-good.test": (f"@ MX 10 mx.dane-good.test.\nmx A {RECEIVER_IP}\n"
                           f"_25._tcp.mx TLSA 3 1 1 {tlsa_hex}\n"),
        "dane-bad.test": (f"@ MX 10 mx.dane-bad.test.\nmx A {RECEIVER_IP}\n"
                          f"_25._tcp.mx TLSA 3 1 1 {'00' * 32}\n"),
        "dane-bogus.test": (f"@ MX 10 mx.dane-bogus.test.\nmx A {RECEIVER_IP}\n"
                            f"_25._tcp.mx TLSA 3 1 1 {tlsa_hex}\n"),
    }
    return zones


def start_testdns(zones):
    """sealpost-testdns with `zones`, SIGNED_DOMAINS signed (the root too), BOGUS_NAMES with
    signatures that fail; `dns.trust_anchor` is the root key for `[dns] trust_anchor`."""
    return TestDns(zones, signed=SIGNED_DOMAINS, bogus=BOGUS_NAMES)


# ---------------------------------------------------------------- clients

def sender_tls_context(sender: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sender.ca_path))


def submit(sender: Server, recipients, message: bytes, mail_options=(), user=ALICE,
           password=ALICE_PASSWORD, envelope_from=None):
    """Submits `message` through the sender's submission port (STARTTLS, AUTH PLAIN).
    Returns smtplib's refused-recipients dict."""
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    options = list(mail_options)
    if any(b >= 0x80 for b in message) and "SMTPUTF8" not in options:
        options += ["BODY=8BITMIME", "SMTPUTF8"]
    with smtplib.SMTP(sender.host, sender.ports["submission"], timeout=TIMEOUT) as client:
        client.ehlo("client.sender.test")
        client.starttls(context=sender_tls_context(sender))
        client.ehlo("client.sender.test")
        client.login(user, password)
        return client.sendmail(envelope_from or user, recipients, message, mail_options=options)


def submit_many(sender: Server, messages, user=ALICE, password=ALICE_PASSWORD):
    """[(recipients, bytes)] on one submission connection."""
    with smtplib.SMTP(sender.host, sender.ports["submission"], timeout=TIMEOUT) as client:
        client.ehlo("client.sender.test")
        client.starttls(context=sender_tls_context(sender))
        client.ehlo("client.sender.test")
        client.login(user, password)
        for recipients, message in messages:
            refused = client.sendmail(user, recipients, message)
            assert refused == {}, refused


def imaps_login(server: Server, user, password, ca=None) -> imaplib.IMAP4_SSL:
    context = ssl.create_default_context(cafile=str(ca or server.ca_path))
    client = imaplib.IMAP4_SSL(server.host, server.ports["imaps"], ssl_context=context, timeout=TIMEOUT)
    client.login(user, password)
    return client


def imap_messages(client: imaplib.IMAP4_SSL, mailbox="INBOX"):
    """Every message of `mailbox` as bytes, by UID order."""
    typ, _ = client.select(mailbox, readonly=True)
    assert typ == "OK"
    typ, data = client.uid("SEARCH", None, "ALL")
    assert typ == "OK", data
    out = []
    for uid in data[0].split():
        typ, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
        assert typ == "OK", fetched
        out.append(next(part[1] for part in fetched if isinstance(part, tuple)))
    return out


def wait_until(predicate, timeout, what, interval=0.2, diagnose=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s\n{diagnose()}")
        time.sleep(interval)


def dsn_parts(raw: bytes) -> dict:
    """The parts of a DSN (RFC 3464) as {'report': Message, 'human': str,
    'per_recipient': [dict], 'per_message': dict, 'returned': bytes or None}."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", f"not multipart/report: {msg['Content-Type']}"
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain", [p.get_content_type() for p in parts]
    status = next(p for p in parts if p.get_content_type() == "message/delivery-status")
    # compat32 parses message/delivery-status as a list of header blocks.
    blocks = status.get_payload()
    fields = [{k.lower(): v for k, v in block.items()} for block in blocks]
    returned = next((p for p in parts if p.get_content_type() in ("message/rfc822", "text/rfc822-headers")), None)
    return {"message": msg, "human": parts[0].get_payload(decode=True).decode("utf-8", "replace"),
            "per_message": fields[0], "per_recipient": fields[1:],
            "returned": returned}


# ---------------------------------------------------------------- pytest fixtures

class World:
    """Everything a delivery test talks to except the sender (see the module doc)."""

    def __init__(self, root: Path):
        self.root = root
        self.port = common_free_port()
        self.ca = CA(root / "ca", name="sealpost delivery test CA")
        self.receiver_cert, self.receiver_key = self.ca.issue(
            "receiver", dns=[RECEIVER_MX, "mitm.receiver.test", "memory.receiver.test",
                             "flaky.receiver.test"], ips=[RECEIVER_IP])
        self.postfix_cert, self.postfix_key = self.ca.issue("postfix", dns=[POSTFIX_MX])
        self.sts_cert, self.sts_key = self.ca.issue("mta-sts", dns=[f"mta-sts.{d}" for d in STS_POLICIES])
        self.tlsa = spki_sha256(self.receiver_cert)
        self.stops = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.dns = start_testdns(delivery_zones(self.tlsa))
        self.trust_anchor = self.dns.trust_anchor
        self.stops.append(self.dns.stop)
        self.sts = MtaStsServer(STS_IP, self.sts_cert, self.sts_key, STS_POLICIES)
        self.stops.append(self.sts.stop)
        accounts = {f"bob@{d}": RECEIVER_PASSWORD for d in SEALPOST_DOMAINS}
        accounts.update({a: RECEIVER_PASSWORD for a in EXTRA_ACCOUNTS})
        self.receiver = DeliveryServer(self.root / "receiver", {
            "hostname": RECEIVER_MX,
            "local_domains": list(SEALPOST_DOMAINS),
            "listeners": {"smtp": f"{RECEIVER_IP}:{self.port}", "imaps": f"{RECEIVER_IP}:0"},
            "tls": {"cert": str(self.receiver_cert), "key": str(self.receiver_key)},
            "dns": {"nameservers": [self.dns.address], "timeout": 1},
        }, accounts, ip=RECEIVER_IP)
        self.receiver.start()
        self.stops.append(self._stop_receiver)
        self.postfix = PostfixMx(POSTFIX_IP, self.port, POSTFIX_MX, POSTFIX_DOMAIN, POSTFIX_USERS,
                                 self.postfix_cert, self.postfix_key)
        self.stops.append(self.postfix.stop)
        upstream = (RECEIVER_IP, self.port)
        self.mitm = SmtpProxy(MITM_IP, self.port, upstream, mode="strip")
        self.stops.append(self.mitm.stop)
        self.memory_proxy = SmtpProxy(MEMORY_IP, self.port, upstream, mode="relay")
        self.stops.append(self.memory_proxy.stop)
        self.flaky = SmtpProxy(FLAKY_IP, self.port, upstream, mode="strip", fail_data=1)
        self.stops.append(self.flaky.stop)

    def _stop_receiver(self):
        code = sigterm_and_wait(self.receiver)
        self.receiver_exit = code

    def stop(self):
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as error:  # keep stopping the rest
                print(f"stopping {stop}: {error}")
        self.stops = []

    def delivery_config(self) -> dict:
        """The sender's [delivery]: every MX on our port, our CA trusted, quick retries."""
        return {
            "enabled": True,
            "port": self.port,
            "mta_sts_port": self.sts.port,
            "extra_ca": str(self.ca.cert),
            "first_retry": 1,
            "max_retry": 2,
        }

    def dns_config(self) -> dict:
        config = {"nameservers": [self.dns.address], "timeout": 1}
        if self.trust_anchor:
            config["trust_anchor"] = str(self.trust_anchor)
        return config

    # ---- the receivers' mailboxes ----

    def stored(self, address, tag=None):
        """[(uid, message-id)] in address's INBOX at the sealpost receiver, only Message-IDs
        containing `tag` when given."""
        return [(uid, mid) for uid, _, mid in self.receiver.mail_list(address)
                if tag is None or (mid and tag in mid)]

    def stored_messages(self, address, tag=None):
        return [self.receiver.mail_cat(address, uid) for uid, _ in self.stored(address, tag)]


@pytest.fixture(scope="module")
def world(tmp_path_factory, request):
    w = World(tmp_path_factory.mktemp("delivery-world"))
    yield w
    w.stop()
    assert getattr(w, "receiver_exit", 0) == 0, (
        f"the receiving sealpost exited {w.receiver_exit} on SIGTERM; stderr: {w.receiver.stderr()}")


@pytest.fixture
def make_sender(world, tmp_path):
    """`make_sender(delivery={...}, config={...})`: a sending sealpost on 127.0.0.1 with
    alice@sender.test, resolving through the world's DNS, delivering to the world's MXes."""
    from conftest import merge
    senders = []

    def factory(delivery=None, config=None, start=True, name=None):
        root = tmp_path / (name or f"sender{len(senders)}")
        base = {
            "hostname": "mail.sender.test",
            "local_domains": [SENDER_DOMAIN],
            "listeners": {"smtp": f"{SENDER_IP}:0", "submission": f"{SENDER_IP}:0",
                          "imaps": f"{SENDER_IP}:0"},
            "dns": world.dns_config(),
            "delivery": merge(world.delivery_config(), delivery or {}),
        }
        sender = DeliveryServer(root, merge(base, config or {}), {ALICE: ALICE_PASSWORD})
        senders.append(sender)
        if start:
            sender.start()
        return sender

    yield factory

    failures = []
    for sender in senders:
        if sender.proc is None:
            continue
        code = sigterm_and_wait(sender)
        if sender.expect_clean_exit and code != 0:
            failures.append(f"{sender.root.name}: exited {code} after SIGTERM; stderr: {sender.stderr()}")
    if failures:
        pytest.fail("\n".join(failures))
