"""Reading mail back over POP3 and IMAP: the server config with every listener, delivery
through SMTP, logged-in poplib and imaplib clients over implicit TLS or STARTTLS/STLS, and
a raw line wire for what those libraries will not do (pipelined bytes in one write,
reading with a short timeout). Every socket operation has a timeout."""

import imaplib
import poplib
import re
import socket
import ssl
import time

from conftest import PASSWORDS
from mail import login as smtp_login
from mail import message, smtp, with_attachment

TIMEOUT = 15
ALICE = "alice@example.test"
BOB = "bob@example.test"

# Merged by make_server into its default config: every listener on an ephemeral port.
READING_CONFIG = {
    "listeners": {
        "smtp": "127.0.0.1:0",
        "submission": "127.0.0.1:0",
        "submissions": "127.0.0.1:0",
        "imap": "127.0.0.1:0",
        "imaps": "127.0.0.1:0",
        "pop3": "127.0.0.1:0",
        "pop3s": "127.0.0.1:0",
    },
}

DOT_LEADING_BODY = ("First line.\r\n"
                    ".a line that starts with a dot\r\n"
                    "..two dots\r\n"
                    ".\r\n"
                    " . \r\n"
                    "...\r\n"
                    "\r\n"
                    "last line\r\n")


def dot_leading_message(to=BOB):
    return message(to=to, subject="dots", body=DOT_LEADING_BODY)


def utf8_message(to=BOB):
    return message(to=to, subject="Grüße aus Köln ✉", body="Ünïcödé bödy: 日本語, emoji 📬\r\n",
                   extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                                  "Content-Transfer-Encoding: 8bit"])


def attachment_message(to=BOB):
    return with_attachment(1024 * 1024, to=to)


# The messages every reading test goes through, by what they exercise.
SAMPLES = {
    "dot-leading-lines": dot_leading_message,
    "8bit-utf8": utf8_message,
    "1mb-attachment": attachment_message,
}


def deliver(server, sent, to=BOB, sender="sender@remote.test"):
    """Sends `sent` through the MX port over STARTTLS; returns once the server said 250."""
    options = ["BODY=8BITMIME"]
    if any(b >= 0x80 for b in sent):
        options.append("SMTPUTF8")
    recipients = [to] if isinstance(to, str) else list(to)
    with smtp(server.ports["smtp"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert client.sendmail(sender, recipients, sent, mail_options=options) == {}


def submit(server, sent, user=ALICE, to=BOB):
    """Sends `sent` as `user` through submission (587) after STARTTLS and AUTH PLAIN."""
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        assert smtp_login(client, user, PASSWORDS[user], "PLAIN")[0] == 235
        assert client.sendmail(user, [to], sent) == {}


def stored(server, address, mailbox=None):
    """[(uid, bytes)] of the mailbox, as `sealpost mail cat` shows them."""
    return [(uid, server.mail_cat(address, uid, mailbox)) for uid, _, _ in
            server.mail_list(address, mailbox)]


def only_stored(server, address, mailbox=None):
    messages = stored(server, address, mailbox)
    assert len(messages) == 1, f"{address} {mailbox or 'INBOX'} holds {len(messages)} messages"
    return messages[0][1]


# ---- POP3 (poplib) ----

def pop3s(server, user=BOB, login=True) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(server.host, server.ports["pop3s"], timeout=TIMEOUT,
                             context=server.tls_context())
    if login:
        client.user(user)
        client.pass_(PASSWORDS[user])
    return client


def pop3_stls(server, user=BOB, login=True) -> poplib.POP3:
    client = poplib.POP3(server.host, server.ports["pop3"], timeout=TIMEOUT)
    client.stls(context=server.tls_context())
    if login:
        client.user(user)
        client.pass_(PASSWORDS[user])
    return client


def pop3_retr(client, number) -> bytes:
    """The message as RETR sent it, dot-unstuffed, with its CRLF line endings; checks that
    poplib's octet count agrees."""
    _, lines, octets = client.retr(number)
    data = b"".join(line + b"\r\n" for line in lines)
    assert octets == len(data), f"poplib counted {octets} octets, lines add up to {len(data)}"
    return data


def pop3_sizes(client):
    """{message number: size} from LIST."""
    _, lines, _ = client.list()
    return {int(n): int(size) for n, size in (line.split() for line in lines)}


def pop3_uidls(client):
    """{message number: unique id} from UIDL."""
    _, lines, _ = client.uidl()
    return {int(n): uid for n, uid in (line.split() for line in lines)}


# ---- IMAP (imaplib) ----

def imaps(server, user=BOB, login=True) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(server.host, server.ports["imaps"], ssl_context=server.tls_context(),
                               timeout=TIMEOUT)
    if login:
        client.login(user, PASSWORDS[user])
    return client


def imap_starttls(server, user=BOB, login=True) -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.ports["imap"], timeout=TIMEOUT)
    client.starttls(ssl_context=server.tls_context())
    if login:
        client.login(user, PASSWORDS[user])
    return client


def ok(result):
    """The data of an imaplib (typ, data) result that must be OK."""
    typ, data = result
    assert typ == "OK", f"{typ} {data!r}"
    return data


def flatten(data) -> bytes:
    """imaplib's response data (strings and (prefix, literal) pairs) as one byte string,
    each literal shown as `{n}` followed by its bytes."""
    out = b""
    for item in data:
        if isinstance(item, tuple):
            out += item[0] + b"\r\n" + item[1]
        elif item is not None:
            out += item
    return out


def fetch_literal(data, item=b"BODY[]") -> bytes:
    """The literal of `item` in a FETCH response (the first one that carries it)."""
    for part in data:
        if isinstance(part, tuple) and item in part[0].upper():
            return part[1]
    raise AssertionError(f"no {item!r} literal in {data!r}"[:2000])


def uid_fetch_body(client, uid) -> bytes:
    return fetch_literal(ok(client.uid("FETCH", str(uid), "(BODY.PEEK[])")))


def response_code(text: bytes, name: str):
    """The arguments of the response code `[NAME args]` in `text`, or None."""
    match = re.search(rb"\[" + name.encode() + rb"(?: ([^\]]*))?\]", text, re.IGNORECASE)
    return match.group(1).split() if match and match.group(1) else ([] if match else None)


def list_mailboxes(client, pattern="*"):
    """{name: {attributes}} from LIST "" pattern."""
    boxes = {}
    for line in ok(client.list('""', pattern)):
        if line is None:
            continue
        if isinstance(line, tuple):
            line = line[0] + line[1]
        match = re.match(rb'\((?P<attrs>[^)]*)\) (?P<delim>NIL|"[^"]*") (?P<name>.+)$', line)
        assert match, f"LIST line does not parse: {line!r}"
        name = match.group("name").decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        boxes[name] = {a.lower() for a in match.group("attrs").decode().split()}
    return boxes


# ---- raw wire ----

class Closed(Exception):
    """The server closed the connection."""


class Wire:
    """A line-oriented client over a plain or TLS socket."""

    def __init__(self, port, tls_context=None, server_hostname="localhost", timeout=TIMEOUT,
                 host="127.0.0.1"):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(f"connection closed; unread: {self.buf!r}")
        self.buf += chunk

    def read_line(self) -> bytes:
        """One line without its CRLF."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exactly(self, n) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def starttls(self, context, server_hostname="localhost"):
        assert self.buf == b"", f"plaintext after the go-ahead for TLS: {self.buf!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def silence(self, seconds) -> bytes:
        """Whatever arrives within `seconds` (b'' when the server says nothing)."""
        got = self.buf
        self.buf = b""
        self.sock.settimeout(seconds)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    chunk = self.sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    break
                if not chunk:
                    break
                got += chunk
        finally:
            self.sock.settimeout(self.timeout)
        return got


class Pop3Wire(Wire):
    def command(self, line) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.read_line()

    def multiline(self) -> bytes:
        """The body of a multi-line response, as sent (still dot-stuffed), without `.`."""
        out = b""
        while (line := self.read_line()) != b".":
            out += line + b"\r\n"
        return out


LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}$")


class ImapWire(Wire):
    def response(self) -> bytes:
        """One whole response line, literals included (each as `{n}` CRLF bytes)."""
        line = self.read_line()
        while (match := LITERAL_AT_END.search(line)):
            line += b"\r\n" + self.read_exactly(int(match.group(1)))
            line += self.read_line()
        return line

    def command(self, tag, text):
        """Sends `tag text`; returns (untagged responses, tagged completion)."""
        self.send(f"{tag} {text}\r\n".encode() if isinstance(text, str) else
                  tag.encode() + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def until_tagged(self, tag):
        untagged = []
        prefix = tag.encode() + b" "
        while True:
            line = self.response()
            if line.startswith(prefix):
                return untagged, line
            untagged.append(line)

    def greeting(self) -> bytes:
        line = self.response()
        assert line.startswith(b"* OK"), f"greeting: {line!r}"
        return line


def capabilities(line: bytes):
    """The capability names (upper case) in a `* CAPABILITY ...` line or a greeting's
    `[CAPABILITY ...]` code."""
    match = re.search(rb"\[CAPABILITY ([^\]]*)\]", line, re.IGNORECASE)
    if match:
        words = match.group(1).split()
    else:
        assert line.upper().startswith(b"* CAPABILITY "), f"not a capability line: {line!r}"
        words = line.split()[2:]
    return {w.decode().upper() for w in words}


def status(completion: bytes) -> str:
    """OK, NO or BAD from a tagged completion."""
    return completion.split(b" ", 2)[1].decode().upper()
