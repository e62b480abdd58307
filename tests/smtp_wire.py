"""A raw SMTP client for what smtplib will not do: pipelined bytes in one write, bare CR/LF,
BDAT, over-long lines. Every socket operation has a timeout."""

import socket
import ssl
import time

TIMEOUT = 10


class Closed(Exception):
    """The server closed the connection."""


class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])
        self.text = "\n".join(lines)

    def __repr__(self):
        return f"Reply({self.text!r})"

    def keywords(self):
        """EHLO extension keywords (upper case), e.g. {'STARTTLS', 'AUTH'}."""
        return {line[4:].split()[0].upper() for line in self.lines[1:] if len(line) > 4}

    def extension(self, name):
        for line in self.lines[1:]:
            words = line[4:].split()
            if words and words[0].upper() == name.upper():
                return words[1:]
        return None


class SmtpWire:
    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT, tls_context=None,
                 server_hostname="localhost"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed(f"connection closed; unread: {self.buf!r}")
        self.buf += chunk

    def read_line(self) -> str:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self) -> Reply:
        lines = []
        while True:
            line = self.read_line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def command(self, line) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply()

    def greeting(self) -> Reply:
        reply = self.read_reply()
        assert reply.code == 220, reply
        return reply

    def ehlo(self, name="client.example.net") -> Reply:
        reply = self.command(f"EHLO {name}")
        assert reply.code == 250, reply
        return reply

    def starttls(self, context, server_hostname="localhost"):
        reply = self.command("STARTTLS")
        assert reply.code == 220, reply
        assert self.buf == b"", f"plaintext after the 220 to STARTTLS: {self.buf!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return reply

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

    def read_until_closed(self, timeout=TIMEOUT) -> bytes:
        """Everything until EOF; fails (socket.timeout) if the server keeps it open."""
        got = self.buf
        self.buf = b""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise socket.timeout(f"connection still open after {timeout}s; got {got!r}")
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                return got
            if not chunk:
                return got
            got += chunk
