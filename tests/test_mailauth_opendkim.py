"""Messages signed by OpenDKIM (Debian's opendkim and opendkim-tools) verify in sealpost.

OpenDKIM signs: the opendkim filter itself in its test mode (`opendkim -t`, Mode s), with
the RSA key opendkim-genkey made and with an Ed25519 key, and libopendkim's own
opendkim-testmsg. Python's smtplib delivers the signed message to port 25, and
sealpost-testdns on loopback publishes the keys: opendkim-genkey's record as it wrote it
(zone-file syntax, parentheses and comment included) and the Ed25519 key.

opendkim.test publishes p=reject and SPF for 127.0.0.1, but the envelope sender is mostly
of another domain (without SPF), so DMARC can only pass through OpenDKIM's signature: a
message whose signature does not verify is refused (550).
"""

import base64
import re
import shutil
import smtplib
import subprocess

import pytest

from mail import message
from testdns import TestDns

BOB = "bob@example.test"
AUTHSERV_ID = "mail.example.test"  # the hostname of conftest's servers
DOMAIN = "opendkim.test"
BODY = ("Hi Bob,\r\n\r\nThis message was signed by OpenDKIM.  Twice-spaced,\r\n"
        "and with trailing space   \r\n\r\n\r\n")


def tool(name: str) -> str:
    """Debian installs OpenDKIM in /usr/sbin, which a user's PATH may lack."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if path is None:
        pytest.fail(f"{name} not found: apt-get install opendkim opendkim-tools (scripts/test does)")
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{"rsa": (private key path, zone record text), "ed25519": (...)}."""
    directory = tmp_path_factory.mktemp("opendkim-keys")
    subprocess.run([tool("opendkim-genkey"), "-b", "2048", "-d", DOMAIN, "-s", "odkrsa",
                    "-D", str(directory)], check=True, capture_output=True)
    rsa_record = one_line((directory / "odkrsa.txt").read_text())
    ed_path = directory / "odked.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(ed_path)],
                   check=True, capture_output=True)
    spki = subprocess.run(["openssl", "pkey", "-in", str(ed_path), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
    # RFC 8463 §4.2: p= is the bare 32-octet public key, the end of the SPKI.
    ed_record = f'odked._domainkey IN TXT "v=DKIM1; k=ed25519; p={base64.b64encode(spki[-32:]).decode()}"\n'
    return {"rsa": (directory / "odkrsa.private", rsa_record),
            "ed25519": (ed_path, ed_record)}


def one_line(record: str) -> str:
    """opendkim-genkey's record on one line, its character-strings unchanged. It writes
      odkrsa._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; "
          "p=MIIB..." )  ; ----- DKIM key odkrsa for opendkim.test
    which hickory's zone parser (in sealpost-testdns) splits at the `;` inside the quotes
    when the strings are within parentheses."""
    name = record.split()[0]
    strings = re.findall(r'"(?:[^"\\]|\\.)*"', record.split("(", 1)[1].split(")", 1)[0])
    assert strings, record
    return f"{name} IN TXT {' '.join(strings)}\n"


@pytest.fixture
def mx(make_server, keys):
    zone = ('_dmarc TXT "v=DMARC1; p=reject"\n'
            '@ TXT "v=spf1 ip4:127.0.0.1 -all"\n'
            + keys["rsa"][1] + "\n" + keys["ed25519"][1])
    dns = TestDns({DOMAIN: zone})
    yield make_server(config={"dns": {"nameservers": [dns.address], "timeout": 1}})
    dns.stop()


def opendkim_sign(tmp_path, raw: bytes, key_path, selector: str, algorithm: str,
                  canonicalization: str) -> bytes:
    """`raw` with the DKIM-Signature the opendkim filter adds in test mode."""
    conf = tmp_path / f"sign-{selector}.conf"
    # RequireSafeKeys: the key lives in pytest's directory under /tmp, which is
    # world-writable (with the sticky bit), and OpenDKIM would refuse to read it.
    conf.write_text(f"Mode s\nDomain {DOMAIN}\nSelector {selector}\nKeyFile {key_path}\n"
                    f"SignatureAlgorithm {algorithm}\nCanonicalization {canonicalization}\n"
                    "RequireSafeKeys no\nSyslog no\n")
    path = tmp_path / "unsigned.eml"
    path.write_bytes(raw)
    result = subprocess.run([tool("opendkim"), "-x", str(conf), "-t", str(path)],
                            capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    found = re.search(r"^DKIM-Signature:.*\n(?:[ \t].*\n?)*", output, re.MULTILINE)
    assert found, f"no DKIM-Signature in OpenDKIM's output: {output}"
    # Its lines end as the message's did (CRLF here); the last one may lack an end.
    field = re.sub(r"\r?\n", "\r\n", found.group(0).rstrip("\r\n")) + "\r\n"
    return field.encode() + raw


def send(server, mail_from, raw):
    """Delivers on port 25; returns the (code, text) of the end of DATA."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.elsewhere.test",
                      timeout=30) as client:
        client.ehlo()
        assert client.mail(mail_from)[0] == 250
        assert client.rcpt(BOB)[0] == 250
        return client.data(raw)


def our_results(stored: bytes) -> str:
    head = stored.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    results = [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
               if line.lower().startswith("authentication-results:")
               and line.split(":", 1)[1].strip().startswith(AUTHSERV_ID)]
    assert len(results) == 1, f"expected one Authentication-Results of ours: {results}"
    return results[0]


def delivered(server, raw: bytes, mail_from="list-bounces@elsewhere.test") -> str:
    """Sends `raw` (by default from a domain without SPF); returns our
    Authentication-Results of the stored message."""
    code, text = send(server, mail_from, raw)
    assert code == 250, text
    listed = server.mail_list(BOB)
    assert len(listed) == 1, listed
    stored = server.mail_cat(BOB, listed[0][0])
    assert stored.endswith(raw), "the signed message was not stored as sent"
    return our_results(stored)


def unsigned():
    return message(sender=f"Olive <olive@{DOMAIN}>", to=BOB, subject="Signed by OpenDKIM",
                   body=BODY)


@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple"])
def test_opendkim_rsa_sha256_signature_passes_dkim_and_carries_dmarc(mx, keys, tmp_path,
                                                                       canonicalization):
    signed = opendkim_sign(tmp_path, unsigned(), keys["rsa"][0], "odkrsa", "rsa-sha256",
                           canonicalization)
    assert f"c={canonicalization};".encode() in signed
    results = delivered(mx, signed)
    assert f"dkim=pass header.d={DOMAIN} header.s=odkrsa header.a=rsa-sha256" in results, results
    assert f"dmarc=pass (p=reject sp=reject dis=none) header.from={DOMAIN}" in results, results
    assert "spf=none smtp.mailfrom=list-bounces@elsewhere.test" in results, results


def test_opendkim_ed25519_sha256_signature_passes_dkim_and_carries_dmarc(mx, keys, tmp_path):
    signed = opendkim_sign(tmp_path, unsigned(), keys["ed25519"][0], "odked", "ed25519-sha256",
                           "relaxed/relaxed")
    results = delivered(mx, signed)
    assert f"dkim=pass header.d={DOMAIN} header.s=odked header.a=ed25519-sha256" in results, results
    assert f"dmarc=pass (p=reject sp=reject dis=none) header.from={DOMAIN}" in results, results


def test_opendkim_signed_message_changed_in_transit_is_refused(mx, keys, tmp_path):
    signed = opendkim_sign(tmp_path, unsigned(), keys["rsa"][0], "odkrsa", "rsa-sha256",
                           "relaxed/relaxed")
    tampered = signed.replace(b"signed by OpenDKIM.", b"signed by nobody.")
    assert tampered != signed
    code, text = send(mx, "list-bounces@elsewhere.test", tampered)
    assert code == 550, text
    assert mx.mail_list(BOB) == []


def test_libopendkim_rsa_sha1_signature_is_found_but_never_valid(mx, keys, tmp_path):
    """opendkim-testmsg signs straight through libopendkim, always with rsa-sha1
    (relaxed/simple): a signature RFC 8301 forbids accepting."""
    unsigned_message = unsigned()
    result = subprocess.run([tool("opendkim-testmsg"), "-C", "-d", DOMAIN, "-k",
                             str(keys["rsa"][0]), "-s", "odkrsa", "-t", str(tmp_path)],
                            input=unsigned_message, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    signed = result.stdout
    assert b"a=rsa-sha1;" in signed and signed.endswith(unsigned_message)
    # Nothing else aligned with the From domain: DMARC fails, p=reject.
    code, text = send(mx, "list-bounces@elsewhere.test", signed)
    assert code == 550, text
    # With an aligned SPF pass the message is delivered, and the verdict says why the
    # signature did not count.
    results = delivered(mx, signed, mail_from=f"bounces@{DOMAIN}")
    # (Parentheses inside an RFC 8601 comment are escaped.)
    assert (f"dkim=fail (rsa-sha1 is not accepted \\(RFC 8301\\)) header.d={DOMAIN} "
            "header.s=odkrsa header.a=rsa-sha1") in results, results
    assert f"spf=pass smtp.mailfrom=bounces@{DOMAIN}" in results, results
    assert f"dmarc=pass (p=reject sp=reject dis=none) header.from={DOMAIN}" in results, results
