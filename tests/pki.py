"""Test certificates made with the openssl CLI: a CA per test, leaf certificates for servers
(SAN DNS names) and clients (SAN email)."""

import hashlib
import secrets
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 30


def openssl(*args, input=None):
    require_openssl()
    result = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=TIMEOUT)
    assert result.returncode == 0, (
        f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}"
    )
    return result.stdout.decode(errors="replace")


def require_openssl():
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is not installed: apt-get install openssl (scripts/test does it)")


def new_key(path: Path, kind="ec"):
    if kind == "ec":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    elif kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    else:
        raise ValueError(kind)
    return path


class CA:
    def __init__(self, directory: Path, name="sealpost test CA", kind="ec"):
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.key = new_key(directory / "ca-key.pem", kind)
        self.cert = directory / "ca.pem"
        openssl("req", "-x509", "-new", "-key", str(self.key), "-subj", f"/CN={name}",
                "-days", "3", "-out", str(self.cert),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, stem, dns=(), emails=(), ips=(), client=False, kind="ec", cn=None):
        """A leaf certificate; returns (fullchain path, key path)."""
        key = new_key(self.dir / f"{stem}-key.pem", kind)
        csr = self.dir / f"{stem}.csr"
        cn = cn or (dns[0] if dns else emails[0] if emails else stem)
        openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips] + [f"email:{e}" for e in emails]
        ext = self.dir / f"{stem}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            f"keyUsage=critical,digitalSignature{',keyEncipherment' if kind == 'rsa' else ''}\n"
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n"
            f"subjectAltName={','.join(sans)}\n"
        )
        leaf = self.dir / f"{stem}-leaf.pem"
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                "-set_serial", "0x" + secrets.token_hex(12), "-days", "2",
                "-extfile", str(ext), "-out", str(leaf))
        chain = self.dir / f"{stem}.pem"
        chain.write_bytes(leaf.read_bytes() + self.cert.read_bytes())
        return chain, key


def pem_fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate in a PEM text."""
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest()


def file_fingerprint(path: Path) -> str:
    return pem_fingerprint(Path(path).read_text())


def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()
