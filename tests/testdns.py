"""A real DNS server on loopback for tests: `sealpost-testdns` serving zone texts.

    with TestDns({"example.org": '@ TXT "v=spf1 -all"\n'}, silent=["slow.example.org"]) as dns:
        config = {"dns": {"nameservers": [dns.address], "timeout": 1}}

Zone texts are RFC 1035 master format relative to their origin; SOA, NS and $TTL are filled
in. Names outside every zone are NXDOMAIN; names under `silent` are never answered, so a
resolver asking for them times out.
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

    def __init__(self, zones: dict, silent=()):
        self._dir = tempfile.TemporaryDirectory(prefix="testdns-")
        for origin, text in zones.items():
            Path(self._dir.name, f"{origin}.zone").write_text(text)
        args = [testdns_bin(), "--listen", "127.0.0.1:0", "--dir", self._dir.name]
        for name in silent:
            args += ["--silent", name]
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
