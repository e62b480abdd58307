"""A real DNS server on loopback for tests: `sealpost-testdns` serving zone texts.

    with TestDns({"example.org": '@ TXT "v=spf1 -all"\n'}, silent=["slow.example.org"]) as dns:
        config = {"dns": {"nameservers": [dns.address], "timeout": 1}}

Zone texts are RFC 1035 master format relative to their origin; SOA, NS and $TTL are filled
in. Names outside every zone are NXDOMAIN; names under `silent` are never answered, so a
resolver asking for them times out.

DNSSEC: zones named in `signed` are signed (ECDSA P-256, key made at start), the root is
signed too, and `dns.trust_anchor` is the path of a file holding the root's DNSKEY in zone-file
syntax, for `[dns] trust_anchor`. Unsigned zones are then provably insecure; the records at or
below each name in `bogus` get signatures that do not verify. `dnssec=True` signs the root (and
writes the anchor) even when no zone is signed.

    with TestDns({"dnssec.test": ZONE, "example.test": OTHER}, signed=["dnssec.test"],
                 bogus=["_25._tcp.mx.dnssec.test"]) as dns:
        config = {"dns": {"nameservers": [dns.address], "trust_anchor": dns.trust_anchor}}
"""

import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def testdns_bin() -> str:
    path = os.environ.get("SEALPOST_TESTDNS_BIN") or str(REPO / "target" / "debug" / "sealpost-testdns")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"sealpost-testdns not found at {path}: run `cargo build --workspace --bins`")
    return path


def txt_strings(text: str) -> str:
    """A TXT value as quoted character-strings of at most 255 octets (long DKIM keys)."""
    chunks = [text[i:i + 200] for i in range(0, len(text), 200)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


class TestDns:
    __test__ = False  # not a pytest test class

    def __init__(self, zones: dict, silent=(), signed=(), bogus=(), dnssec=False):
        self._dir = tempfile.TemporaryDirectory(prefix="testdns-")
        for origin, text in zones.items():
            Path(self._dir.name, f"{origin}.zone").write_text(text)
        args = [testdns_bin(), "--listen", "127.0.0.1:0", "--dir", self._dir.name]
        for name in silent:
            args += ["--silent", name]
        for origin in signed:
            args += ["--sign", origin]
        for name in bogus:
            args += ["--bogus", name]
        self.trust_anchor = None
        if dnssec or signed or bogus:
            # Not `.zone`: the server must not take its own output for a zone file.
            self.trust_anchor = str(Path(self._dir.name, "trust-anchor.key"))
            args += ["--trust-anchor-out", self.trust_anchor]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"sealpost-testdns did not start: {self.proc.stderr.read().decode()}")
        self.address = line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
