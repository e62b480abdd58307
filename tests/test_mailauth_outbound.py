"""Outbound mail authentication: DKIM keys (`sealpost domain`), signatures checked by
verifiers no one here wrote (dkimpy, OpenDKIM), the records of `sealpost dns` parsed by
dnspython and served by a real DNS server on loopback, and DMARC aggregate reports mailed
to the report mailbox, imported and summarised by `sealpost dmarc report`."""

import base64
import email
import email.policy
import gzip
import hashlib
import os
import re
import shutil
import smtplib
import sqlite3
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import dkim
import dns.rdatatype
import dns.resolver
import dns.zone
import pytest

from conftest import PASSWORDS, REPO
from mail import header_values, login, smtp

REPORTS = REPO / "crates" / "mailauth" / "src" / "reports" / "testdata"

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Cc: carol@example.net\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <lunch.1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Noon at the usual place?  Trailing spaces here:   \r\n"
    b"\r\n"
    b"\r\n"
)


def sealpost_testdns_bin() -> str:
    path = REPO / "target" / "debug" / "sealpost-testdns"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found: run `cargo build --workspace --bins`")
    return str(path)


@pytest.fixture
def testdns(tmp_path):
    """start(zone_texts: {origin: text}) -> port of a sealpost-testdns serving them."""
    procs = []

    def start(zones):
        directory = tmp_path / f"zones{len(procs)}"
        directory.mkdir()
        for origin, text in zones.items():
            (directory / f"{origin}.zone").write_text(f"$ORIGIN {origin}.\n{text}")
        proc = subprocess.Popen([sealpost_testdns_bin(), "--listen", "127.0.0.1:0", "--dir", str(directory)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        line = proc.stdout.readline().decode().strip()
        if not line:
            pytest.fail(f"sealpost-testdns did not start: {proc.stderr.read().decode()}")
        return int(line.rsplit(":", 1)[1])

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def resolver(port) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.lifetime = 5
    return r


def domain_add(server, domain):
    return server.cli("domain", "add", domain).stdout.decode()


def active_keys(server, domain):
    """{algorithm name: selector} from the manifest."""
    manifest = (server.data_dir / "dkim" / domain / "selectors").read_text()
    return dict(line.split() for line in manifest.splitlines() if line and not line.startswith("#"))


def sign(server, domain, message=MESSAGE) -> bytes:
    return server.cli("domain", "sign", domain, input=message).stdout


def zone(server, domain, origin=None):
    text = server.cli("dns", domain).stdout.decode()
    return text, dns.zone.from_text(text, origin=(origin or domain) + ".", relativize=False,
                                    check_origin=False)


def txt_records(parsed) -> dict:
    """{name without trailing dot: [joined TXT value, ...]}"""
    out = {}
    for name, node in parsed.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype == dns.rdatatype.TXT:
                for rdata in rdataset:
                    out.setdefault(str(name).rstrip("."), []).append(b"".join(rdata.strings))
    return out


def openssl(*args, input=None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True).stdout


def signature_tags(signed: bytes):
    """The tags of each DKIM-Signature, in order, unfolded."""
    head = signed.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.split(r"\r\n(?![ \t])", head)
    sigs = []
    for field in fields:
        name, _, value = field.partition(":")
        if name.lower() == "dkim-signature":
            value = re.sub(r"\s+", "", value)
            sigs.append(dict(t.split("=", 1) for t in value.split(";") if t))
    return sigs


# ---- keys ----

def test_domain_add_creates_both_keys_0600_under_dated_selectors_and_keeps_them(make_server):
    server = make_server(start=False)
    out = domain_add(server, "Example.ORG")
    assert "example.org is now a local domain" in out
    assert "created dmarc-reports@example.org" in out
    keys = active_keys(server, "example.org")
    assert set(keys) == {"rsa-sha256", "ed25519-sha256"}
    assert re.fullmatch(r"s\d{8}r", keys["rsa-sha256"]), keys
    assert re.fullmatch(r"s\d{8}e", keys["ed25519-sha256"]), keys
    directory = server.data_dir / "dkim" / "example.org"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.data_dir / "dkim").stat().st_mode) == 0o700
    contents = {}
    for selector in keys.values():
        path = directory / f"{selector}.pem"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        contents[selector] = path.read_bytes()
    # openssl reads them: PKCS#8 RSA-2048 and Ed25519.
    rsa_text = openssl("pkey", "-in", str(directory / f"{keys['rsa-sha256']}.pem"), "-noout", "-text")
    assert b"2048 bit" in rsa_text
    ed_text = openssl("pkey", "-in", str(directory / f"{keys['ed25519-sha256']}.pem"), "-noout", "-text")
    assert b"ED25519" in ed_text

    again = domain_add(server, "example.org")
    assert "was already a local domain" in again
    assert again.count(" kept ") == 2
    assert active_keys(server, "example.org") == keys
    for selector, data in contents.items():
        assert (directory / f"{selector}.pem").read_bytes() == data

    listed = server.cli("domain", "list").stdout.decode()
    assert f"example.org rsa={keys['rsa-sha256']} ed25519={keys['ed25519-sha256']}" in listed
    accounts = server.cli("account", "list").stdout.decode().split()
    assert "dmarc-reports@example.org" in accounts and "tls-reports@example.org" in accounts


def test_rotation_makes_new_selectors_and_keeps_the_old_key_files(make_server):
    server = make_server(start=False)
    domain_add(server, "example.org")
    old = active_keys(server, "example.org")
    out = server.cli("domain", "rotate-keys", "example.org").stdout.decode()
    new = active_keys(server, "example.org")
    assert set(new.values()).isdisjoint(old.values())
    assert all(selector in out for selector in new.values())
    for selector in [*old.values(), *new.values()]:
        path = server.data_dir / "dkim" / "example.org" / f"{selector}.pem"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sigs = signature_tags(sign(server, "example.org"))
    assert [s["s"] for s in sigs] == [new["rsa-sha256"], new["ed25519-sha256"]]
    refused = server.cli("domain", "rotate-keys", "nowhere.example", check=False)
    assert refused.returncode != 0 and b"not a local domain" in refused.stderr


# ---- signatures, checked by others ----

def test_signatures_are_rsa_and_ed25519_relaxed_with_oversigned_headers(make_server):
    server = make_server(start=False)
    domain_add(server, "example.org")
    signed = sign(server, "example.org")
    assert signed.endswith(MESSAGE)
    sigs = signature_tags(signed)
    assert [s["a"] for s in sigs] == ["rsa-sha256", "ed25519-sha256"]
    for s in sigs:
        assert s["c"] == "relaxed/relaxed" and s["d"] == "example.org"
        names = [h.lower() for h in s["h"].split(":")]
        for name in ("from", "subject", "date", "to", "cc"):
            assert names.count(name) == 2, (name, names)
        for name in ("message-id", "mime-version", "content-type"):
            assert names.count(name) == 1, (name, names)
    unknown = server.cli("domain", "sign", "example.net", input=MESSAGE, check=False)
    assert unknown.returncode != 0 and b"domain add example.net" in unknown.stderr


def test_dkimpy_verifies_both_signatures_through_a_real_dns_server(make_server, testdns):
    server = make_server(start=False)
    domain_add(server, "example.org")
    text, _ = zone(server, "example.org")
    port = testdns({"example.org": text})
    dns_answers = resolver(port)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        answer = dns_answers.resolve(name, "TXT")
        return b"".join(answer[0].strings)

    signed = sign(server, "example.org")
    checker = dkim.DKIM(signed)
    assert checker.verify(idx=0, dnsfunc=dnsfunc), "rsa-sha256 signature rejected by dkimpy"
    assert checker.verify(idx=1, dnsfunc=dnsfunc), "ed25519-sha256 signature rejected by dkimpy"

    tampered = signed.replace(b"Subject: Lunch on Friday", b"Subject: Lunch on Monday")
    for idx in (0, 1):
        assert not dkim.DKIM(tampered).verify(idx=idx, dnsfunc=dnsfunc)
    # Oversigning: a second From above the signed one breaks both signatures.
    forged = signed.replace(b"From: Alice", b"From: Mallory <m@evil.example>\r\nFrom: Alice", 1)
    for idx in (0, 1):
        assert not dkim.DKIM(forged).verify(idx=idx, dnsfunc=dnsfunc)


def opendkim_bin() -> str:
    """Debian installs it in /usr/sbin, which a user's PATH may lack."""
    path = shutil.which("opendkim") or "/usr/sbin/opendkim"
    if not os.access(path, os.X_OK):
        pytest.fail("opendkim not found: apt-get install opendkim opendkim-tools (scripts/test does)")
    return path


def opendkim_verify(tmp_path, keys_file, message: bytes) -> str:
    """OpenDKIM's verifier in test mode (-t) with the public keys from a file; returns
    the Authentication-Results it would add."""
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Mode v\nTestPublicKeys {keys_file}\nSyslog no\nAlwaysAddARHeader yes\n")
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    result = subprocess.run([opendkim_bin(), "-x", str(conf), "-t", str(path), "-vvv"],
                            capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    return output


def test_opendkim_verifies_both_signatures(make_server, tmp_path):
    server = make_server(start=False)
    domain_add(server, "example.org")
    _, parsed = zone(server, "example.org")
    keys_file = tmp_path / "keys"
    keys_file.write_text("".join(
        f"{name} {values[0].decode()}\n"
        for name, values in txt_records(parsed).items() if "._domainkey." in name))
    signed = sign(server, "example.org")
    keys = active_keys(server, "example.org")

    output = opendkim_verify(tmp_path, keys_file, signed)
    assert re.search(r"dkim=pass \(2048-bit key\) header\.d=example\.org .*header\.a=rsa-sha256 "
                     rf"header\.s={keys['rsa-sha256']}", output), output
    assert re.search(rf"dkim=pass .*header\.a=ed25519-sha256 header\.s={keys['ed25519-sha256']}",
                     output), output

    tampered = signed.replace(b"Noon at the usual place?", b"Midnight at the usual place?")
    output = opendkim_verify(tmp_path, keys_file, tampered)
    assert "dkim=pass" not in output and "dkim=fail" in output, output


# ---- sealpost dns ----

def spki_sha256(cert_pem: Path) -> str:
    public = openssl("x509", "-in", str(cert_pem), "-pubkey", "-noout")
    return hashlib.sha256(openssl("pkey", "-pubin", "-outform", "DER", input=public)).hexdigest()


def test_dns_prints_every_record_as_a_zone_that_dnspython_and_a_dns_server_read(make_server, testdns):
    server = make_server()
    domain_add(server, "example.test")
    text, parsed = zone(server, "example.test")
    txt = txt_records(parsed)
    keys = active_keys(server, "example.test")
    key_dir = server.data_dir / "dkim" / "example.test"

    mx = parsed.get_rdataset("example.test.", "MX")
    assert [(r.preference, str(r.exchange)) for r in mx] == [(10, "mail.example.test.")]
    assert txt["example.test"] == [b"v=spf1 mx -all"]

    rsa_der = openssl("pkey", "-in", str(key_dir / f"{keys['rsa-sha256']}.pem"), "-pubout", "-outform", "DER")
    assert txt[f"{keys['rsa-sha256']}._domainkey.example.test"] == [
        b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_der)]
    ed_der = openssl("pkey", "-in", str(key_dir / f"{keys['ed25519-sha256']}.pem"), "-pubout", "-outform", "DER")
    assert txt[f"{keys['ed25519-sha256']}._domainkey.example.test"] == [
        b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_der[-32:])]
    rsa_line = next(line for line in text.splitlines() if line.startswith(keys["rsa-sha256"]))
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', rsa_line)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings), strings

    assert txt["_dmarc.example.test"] == [
        b"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.test"]
    assert txt["_smtp._tls.example.test"] == [b"v=TLSRPTv1; rua=mailto:tls-reports@example.test"]
    (sts,) = txt["_mta-sts.example.test"]
    assert re.fullmatch(rb"v=STSv1; id=[A-Za-z0-9]{1,32}", sts), sts
    policy = [line[len(";   "):] for line in text.splitlines() if line.startswith(";   ")]
    assert policy == ["version: STSv1", "mode: testing", "mx: mail.example.test", "max_age: 86400"]
    assert "https://mta-sts.example.test/.well-known/mta-sts.txt" in text
    assert "mode: enforce" in text

    tlsa = parsed.get_rdataset("_25._tcp.mail.example.test.", "TLSA")
    assert [(r.usage, r.selector, r.mtype, r.cert.hex()) for r in tlsa] == [
        (3, 1, 1, spki_sha256(server.data_dir / "tls" / "cert.pem"))]

    # The same text, served by a DNS server, answers a resolver.
    port = testdns({"example.test": text})
    answers = resolver(port)
    got = answers.resolve(f"{keys['rsa-sha256']}._domainkey.example.test", "TXT")
    assert b"".join(got[0].strings) == b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_der)
    assert [str(r.exchange) for r in answers.resolve("example.test", "MX")] == ["mail.example.test."]


def test_dns_tlsa_names_the_configured_certificate(make_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=mx.example.org", "-days", "30")
    server = make_server(config={"hostname": "mx.example.org", "tls": {"cert": str(cert), "key": str(key)}},
                         start=False)
    domain_add(server, "example.org")
    _, parsed = zone(server, "example.org")
    tlsa = parsed.get_rdataset("_25._tcp.mx.example.org.", "TLSA")
    assert [r.cert.hex() for r in tlsa] == [spki_sha256(cert)]
    assert [str(r.exchange) for r in parsed.get_rdataset("example.org.", "MX")] == ["mx.example.org."]


def test_dns_for_a_domain_without_keys_says_what_to_do(make_server):
    server = make_server(start=False)
    result = server.cli("dns", "example.net", check=False)
    assert result.returncode != 0
    assert b"sealpost domain add example.net" in result.stderr


# ---- DMARC aggregate reports ----

def test_reports_mailed_to_the_rua_mailbox_are_imported_once_and_summarised(make_server, testdns):
    # A DNS server that knows none of the senders: SPF, DKIM and DMARC find nothing, so
    # the reports are accepted as ordinary mail.
    port = testdns({"invalid": "invalid. 3600 IN TXT \"placeholder\"\n"})
    server = make_server(config={"dns": {"nameservers": [f"127.0.0.1:{port}"]}}, start=False)
    domain_add(server, "example.org")
    server.start()
    reports = [(REPORTS / name).read_bytes()
               for name in ("report-gzip.eml", "report-zip.eml", "not-a-report.eml")]
    with smtplib.SMTP(server.host, server.ports["smtp"], timeout=15) as smtp:
        for raw in reports:
            refused = smtp.sendmail("dmarc-noreply@receiver.example", ["dmarc-reports@example.org"], raw)
            assert refused == {}

    result = server.cli("dmarc", "report", "example.org")
    assert b"2 reports imported" in result.stderr, result.stderr
    summary = result.stdout.decode()
    for line in [
        "DMARC aggregate reports for example.org",
        "period: 2026-11-26 to 2026-11-27 (2 reports from 2 organisations)",
        "messages: 57",
        "dmarc pass: 51 (89.5%)",
        "dkim aligned pass: 51",
        "spf aligned pass: 48",
        "disposition: none 51, quarantine 5, reject 1",
        "  spoofer.example mfrom softfail: 5",
        "  receiver.example: 1 reports, 50 messages",
        "  bigmail.example: 1 reports, 7 messages",
    ]:
        assert line in summary, f"missing {line!r} in\n{summary}"
    sources = {line.split()[0]: line.split()[1:] for line in summary.splitlines()
               if re.match(r"^[0-9a-f.:]+\s+\d", line)}
    assert sources["192.0.2.25"][:5] == ["48", "48", "48", "0", "0"]
    assert sources["203.0.113.66"][:5] == ["5", "0", "0", "5", "0"]
    assert sources["2001:db8::bad"][:5] == ["1", "0", "0", "0", "1"]

    # The same report mailed again, and a second run: nothing is counted twice.
    with smtplib.SMTP(server.host, server.ports["smtp"], timeout=15) as smtp:
        smtp.sendmail("dmarc-noreply@receiver.example", ["dmarc-reports@example.org"], reports[0])
    again = server.cli("dmarc", "import")
    assert b"1 already stored" in again.stdout, again.stdout
    assert server.cli("dmarc", "report", "example.org").stdout.decode() == summary
    # The messages stay in the mailbox for a person to read.
    assert len(server.mail_list("dmarc-reports@example.org")) == 4


def test_report_for_a_domain_without_reports_says_where_they_arrive(make_server):
    server = make_server(start=False)
    domain_add(server, "example.org")
    out = server.cli("dmarc", "report", "example.org").stdout.decode()
    assert "no DMARC aggregate reports about example.org" in out
    assert "dmarc-reports@example.org" in out


def test_send_reports_with_no_evaluations_queues_nothing(make_server):
    server = make_server(start=False)
    domain_add(server, "example.test")
    assert server.cli("dmarc", "send-reports").stdout.decode().strip() == "no reports due"
    assert server.queue_list() == []


def insert_evaluations(server, rows):
    """DMARC evaluations as port 25 intake records them, written straight into the store
    so they can be dated yesterday (reports cover complete days only)."""
    db = sqlite3.connect(server.data_dir / "store.sqlite3", timeout=10)
    with db:
        db.executemany(
            "INSERT INTO dmarc_evaluations (evaluated_at, source_ip, header_from, envelope_from, "
            "envelope_to, policy_domain, p, sp, np, adkim_strict, aspf_strict, testing, fo, "
            "disposition, dkim_aligned, spf_aligned, dkim, spf, rua) "
            "VALUES (?, ?, ?, ?, 'example.test', ?, 'reject', NULL, NULL, 0, 0, 0, NULL, ?, ?, ?, ?, ?, ?)",
            rows)
    db.close()


def queued_messages(server):
    db = sqlite3.connect(server.data_dir / "store.sqlite3", timeout=10)
    rows = db.execute("SELECT queue.id, blobs.raw FROM queue JOIN blobs ON blobs.id = queue.blob "
                      "ORDER BY queue.id").fetchall()
    db.close()
    return rows


def test_send_reports_queues_one_signed_rfc9990_report_per_domain_and_day(make_server, testdns, tmp_path):
    # vendor.example accepts reports about example.net; elsewhere.example does not.
    port = testdns({"vendor.example": "example.net._report._dmarc.vendor.example. 3600 IN TXT \"v=DMARC1\"\n",
                    "elsewhere.example": "elsewhere.example. 3600 IN TXT \"v=spf1 -all\"\n"})
    server = make_server(config={"dns": {"nameservers": [f"127.0.0.1:{port}"]}}, start=False)
    domain_add(server, "example.test")
    day = int(time.time()) // 86400 * 86400 - 86400
    rua = "mailto:dmarc@example.net,mailto:agg@vendor.example!10m,mailto:x@elsewhere.example"
    dkim_pass = "example.net\ts1\tpass"
    insert_evaluations(server, [
        (day + 100, "192.0.2.1", "example.net", "example.net", "example.net", "none", 1, 1,
         dkim_pass, "example.net\tmfrom\tpass", rua),
        (day + 200, "192.0.2.1", "example.net", "example.net", "example.net", "none", 1, 1,
         dkim_pass, "example.net\tmfrom\tpass", rua),
        (day + 300, "203.0.113.5", "example.net", "spoof.example", "example.net", "reject", 0, 0,
         "", "spoof.example\tmfrom\tfail", rua),
        # Today's is not reported yet.
        (int(time.time()), "192.0.2.1", "example.net", "example.net", "example.net", "none", 1, 1,
         dkim_pass, "example.net\tmfrom\tpass", rua),
    ])

    out = server.cli("dmarc", "send-reports").stdout.decode()
    assert re.fullmatch(r"queued report \S+ for example\.net \(3 messages\) to "
                        r"dmarc@example\.net, agg@vendor\.example\n", out), out
    assert [q[1:3] for q in server.queue_list()] == [
        ["dmarc-reports@example.test", "dmarc@example.net,agg@vendor.example"]]
    ((_, raw),) = queued_messages(server)

    # Signed by the reporting domain, checked by dkimpy against the published records.
    text, _ = zone(server, "example.test")
    answers = resolver(testdns({"example.test": text}))

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return b"".join(answers.resolve(name, "TXT")[0].strings)

    assert [s["d"] for s in signature_tags(raw)] == ["example.test", "example.test"]
    assert dkim.DKIM(raw).verify(idx=0, dnsfunc=dnsfunc)
    assert dkim.DKIM(raw).verify(idx=1, dnsfunc=dnsfunc)

    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = message["Subject"]
    assert re.fullmatch(r"Report Domain: example\.net Submitter: mail\.example\.test Report-ID: <\S+>",
                        subject), subject
    (attachment,) = [p for p in message.iter_attachments() if p.get_content_type() == "application/gzip"]
    assert attachment.get_filename() == f"mail.example.test!example.net!{day}!{day + 86399}.xml.gz"
    root = ET.fromstring(gzip.decompress(attachment.get_content()))
    ns = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
    assert root.tag == "{urn:ietf:params:xml:ns:dmarc-2.0}feedback"
    assert root.findtext("d:report_metadata/d:org_name", namespaces=ns) == "mail.example.test"
    assert root.findtext("d:report_metadata/d:date_range/d:begin", namespaces=ns) == str(day)
    assert root.findtext("d:policy_published/d:domain", namespaces=ns) == "example.net"
    assert root.findtext("d:policy_published/d:p", namespaces=ns) == "reject"
    records = sorted(
        (r.findtext("d:row/d:source_ip", namespaces=ns), r.findtext("d:row/d:count", namespaces=ns),
         r.findtext("d:row/d:policy_evaluated/d:disposition", namespaces=ns),
         r.findtext("d:row/d:policy_evaluated/d:dkim", namespaces=ns),
         r.findtext("d:auth_results/d:spf/d:result", namespaces=ns))
        for r in root.findall("d:record", ns))
    assert records == [("192.0.2.1", "2", "pass", "pass", "pass"),
                       ("203.0.113.5", "1", "reject", "fail", "fail")]

    assert server.cli("dmarc", "send-reports").stdout.decode().strip() == "no reports due"
    assert len(server.queue_list()) == 1


def test_submitted_mail_is_signed_and_verifies_with_dkimpy_and_sealpost_itself(make_server, testdns):
    """Keys made while the server runs are used for the next message; the signatures pass
    dkimpy and sealpost's own port 25 verifier, both asking a DNS server that serves the
    records `sealpost dns` printed."""
    server = make_server()
    domain_add(server, "example.test")  # while it runs
    text, _ = zone(server, "example.test")
    dns_port = testdns({"example.test": text})
    answers = resolver(dns_port)

    sent = MESSAGE.replace(b"alice@example.org", b"alice@example.test").replace(
        b"<lunch.1@example.org>", b"<lunch.2@example.test>")
    with smtp(server.ports["submission"]) as client:
        client.ehlo("client.example.net")
        client.starttls(context=server.tls_context())
        client.ehlo("client.example.net")
        code, _ = login(client, "alice@example.test", PASSWORDS["alice@example.test"])
        assert code == 235
        client.sendmail("alice@example.test", ["bob@example.test"], sent)
    entries = server.mail_list("bob@example.test")
    stored = server.mail_cat("bob@example.test", entries[-1][0])
    keys = active_keys(server, "example.test")
    sigs = signature_tags(stored)
    assert [(s["a"], s["d"], s["s"]) for s in sigs] == [
        ("rsa-sha256", "example.test", keys["rsa-sha256"]),
        ("ed25519-sha256", "example.test", keys["ed25519-sha256"])], stored[:1500]

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return b"".join(answers.resolve(name, "TXT")[0].strings)

    signed = stored[stored.index(b"DKIM-Signature:"):]
    assert dkim.DKIM(signed).verify(idx=0, dnsfunc=dnsfunc)
    assert dkim.DKIM(signed).verify(idx=1, dnsfunc=dnsfunc)

    # The same signed message arriving on port 25 of a server that asks that DNS.
    receiver = make_server(config={"dns": {"nameservers": [f"127.0.0.1:{dns_port}"]}},
                           name="receiver")
    with smtp(receiver.ports["smtp"]) as client:
        client.sendmail("alice@example.test", ["bob@example.test"], signed)
    received = receiver.messages("bob@example.test")[-1]
    results = " ".join(header_values(received, "Authentication-Results"))
    assert results.count("dkim=pass") == 2, results
    assert "dmarc=pass" in results, results
