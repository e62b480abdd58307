"""Badly configured servers for `sealpost check` to catch, built from other software:
`openssl s_server` with legacy TLS, and a small STARTTLS SMTP server on Python's ssl
module whose faults are switched on one at a time. Certificates are made with the
openssl CLI (tests/pki.py), including expired ones and chains with a missing link.
"""

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pki import CA, new_key, openssl

READY_TIMEOUT = 15


def free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(host, port, proc=None, timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"server exited ({proc.returncode}) before listening: {out}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {host}:{port} after {timeout}s")


# ---- certificates ----

def expired_leaf(ca: CA, stem: str, dns=("localhost",)):
    """A leaf signed by `ca` that expired in 2020 (openssl ca can set both dates)."""
    d = ca.dir
    key = new_key(d / f"{stem}-key.pem")
    csr = d / f"{stem}.csr"
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={dns[0]}", "-out", str(csr))
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    conf = d / "ca.cnf"
    conf.write_text(
        "[ca]\ndefault_ca = test\n"
        f"[test]\ndatabase = {d}/index.txt\nnew_certs_dir = {d}\nserial = {d}/serial\n"
        "default_md = sha256\npolicy = any\nunique_subject = no\n"
        "[any]\ncommonName = supplied\n"
    )
    ext = d / f"{stem}.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join('DNS:' + n for n in dns)}\n"
    )
    leaf = d / f"{stem}-leaf.pem"
    openssl("ca", "-batch", "-config", str(conf), "-cert", str(ca.cert), "-keyfile", str(ca.key),
            "-in", str(csr), "-out", str(leaf), "-notext", "-extfile", str(ext),
            "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")
    return leaf, key


def leaf_behind_intermediate(ca: CA, stem: str, dns=("localhost",)):
    """(leaf alone, key): the leaf is issued by an intermediate that is not sent."""
    d = ca.dir
    int_key = new_key(d / f"{stem}-int-key.pem")
    int_csr = d / f"{stem}-int.csr"
    openssl("req", "-new", "-key", str(int_key), "-subj", "/CN=sealpost test intermediate",
            "-out", str(int_csr))
    int_ext = d / f"{stem}-int.ext"
    int_ext.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                       "keyUsage=critical,keyCertSign,cRLSign\n")
    intermediate = d / f"{stem}-int.pem"
    openssl("x509", "-req", "-in", str(int_csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-set_serial", "0x1234", "-days", "2", "-extfile", str(int_ext), "-out", str(intermediate))
    key = new_key(d / f"{stem}-key.pem")
    csr = d / f"{stem}.csr"
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={dns[0]}", "-out", str(csr))
    ext = d / f"{stem}.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join('DNS:' + n for n in dns)}\n"
    )
    leaf = d / f"{stem}-leaf.pem"
    openssl("x509", "-req", "-in", str(csr), "-CA", str(intermediate), "-CAkey", str(int_key),
            "-set_serial", "0x5678", "-days", "2", "-extfile", str(ext), "-out", str(leaf))
    return leaf, key


# ---- openssl s_server: legacy TLS, implicit ----

class OpensslServer:
    """`openssl s_server` on an implicit-TLS port with the given extra arguments."""

    def __init__(self, cert: Path, key: Path, args):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", str(cert),
             "-key", str(key), "-quiet", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        wait_listening("127.0.0.1", self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


# ---- a STARTTLS SMTP server on Python's ssl module ----

class StarttlsSmtpServer:
    """SMTP with STARTTLS on 127.0.0.1. Faults, each off by default:

    answer_pipelined: commands read together with STARTTLS are answered inside TLS
        (the CVE-2011-0411 bug: the read buffer survives the upgrade).
    auth_before_tls: AUTH PLAIN LOGIN is advertised and checked before STARTTLS.
    inject_response: a plaintext reply follows "220 ready" before the handshake.
    starttls: False makes it a plaintext-only server.
    """

    def __init__(self, cert: Path, key: Path, answer_pipelined=False, auth_before_tls=False,
                 inject_response=False, starttls=True):
        self.inject_response = inject_response
        self.starttls = starttls
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.answer_pipelined = answer_pipelined
        self.auth_before_tls = auth_before_tls
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.closed = True
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, sock):
        try:
            sock.settimeout(20)
            self._converse(sock)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _converse(self, sock):
        buf = b""
        tls = False
        sock.sendall(b"220 weak.test ESMTP\r\n")
        while True:
            while b"\r\n" not in buf:
                data = sock.recv(4096)
                if not data:
                    return
                buf += data
            line, buf = buf.split(b"\r\n", 1)
            verb = line.split(b" ", 1)[0].upper()
            if verb in (b"EHLO", b"HELO"):
                lines = [b"weak.test", b"PIPELINING"]
                if not tls and self.starttls:
                    lines.append(b"STARTTLS")
                if tls or self.auth_before_tls:
                    lines.append(b"AUTH PLAIN LOGIN")
                lines.append(b"8BITMIME")
                reply = b"".join(b"250-" + l + b"\r\n" for l in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
                sock.sendall(reply)
            elif verb == b"STARTTLS" and not tls and self.starttls:
                ready = b"220 2.0.0 ready to start TLS\r\n"
                sock.sendall(ready + (b"250 2.0.0 injected\r\n" if self.inject_response else b""))
                if not self.answer_pipelined:
                    buf = b""  # the fix for CVE-2011-0411
                sock = self.context.wrap_socket(sock, server_side=True)
                tls = True
            elif verb == b"AUTH":
                if tls or self.auth_before_tls:
                    sock.sendall(b"535 5.7.8 authentication credentials invalid\r\n")
                else:
                    sock.sendall(b"530 5.7.0 must issue a STARTTLS command first\r\n")
            elif verb in (b"NOOP", b"RSET"):
                sock.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                sock.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                sock.sendall(b"502 5.5.1 not implemented\r\n")
