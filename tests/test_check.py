"""`sealpost check` against real servers: sealpost itself must get A+ on all seven ports,
and servers built from other software with one fault each must be caught with the
finding that names the fault."""

import base64
import hashlib
import http.server
import json
import random
import ssl
import subprocess
import threading
import time

import pytest

from conftest import LISTENER_KEYS, sealpost_bin
from pki import CA, new_key
from testdns import TestDns, txt_strings
from weak_servers import (
    OpensslServer,
    StarttlsSmtpServer,
    expired_leaf,
    free_port,
    leaf_behind_intermediate,
)

CHECK_TIMEOUT = 120
ALL_LISTENERS = {key: "127.0.0.1:0" for key in LISTENER_KEYS}


def run_check(*args, ca=None):
    cmd = [sealpost_bin(), "check", *(["--ca", str(ca)] if ca else []), *args]
    return subprocess.run(cmd, capture_output=True, timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL)


def check_json(*targets, ca=None, extra=()):
    result = run_check("--json", *extra, *targets, ca=ca)
    assert result.returncode == 0, (
        f"sealpost check exited {result.returncode}\nstderr: {result.stderr.decode(errors='replace')}"
    )
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    return report


def only_endpoint(report):
    [endpoint] = report["endpoints"]
    return endpoint


def finding_ids(endpoint):
    return [f["id"] for f in endpoint["findings"] if f["cap"] != "A+"]


def accepted_versions(endpoint):
    return {v["version"] for v in endpoint["versions"] if v["accepted"]}


def explain(endpoint) -> str:
    return json.dumps({k: endpoint[k] for k in ("grade", "findings", "errors", "versions")}, indent=1)


# ---- sealpost itself ----

@pytest.fixture
def full_server(make_server):
    return make_server(config={"hostname": "localhost", "listeners": ALL_LISTENERS})


def test_sealpost_gets_a_plus_on_all_seven_ports_in_under_five_seconds(full_server):
    targets = [f"{key}://localhost:{full_server.ports[key]}" for key in LISTENER_KEYS]
    started = time.monotonic()
    report = check_json(*targets, ca=full_server.ca_path)
    elapsed = time.monotonic() - started
    print(f"sealpost check of 7 endpoints took {elapsed:.2f} s")
    assert elapsed < 5, f"checking one host took {elapsed:.1f} s"
    assert [e["service"] for e in report["endpoints"]] == list(LISTENER_KEYS)
    for e in report["endpoints"]:
        assert e["grade"] == "A+", explain(e)
        assert e["errors"] == [], explain(e)
        assert accepted_versions(e) == {"TLSv1.2", "TLSv1.3"}, explain(e)
        assert e["negotiated"]["group"] == "X25519MLKEM768"
        assert any(g["name"] == "X25519MLKEM768" and g["accepted"] for g in e["groups"])
        assert all(not s["weaknesses"] for s in e["cipher_suites"]["suites"])
        assert e["cipher_suites"]["server_preference"] is True
        cert = e["certificate"]
        assert cert["trusted"] and cert["name_matches"] and cert["chain_complete"], cert
        assert cert["key_type"] == "EC P-256" and cert["days_to_expiry"] > 30
        assert e["alpn_foreign"] == "refused"
        if e["service"] in ("smtp", "submission", "imap", "pop3"):
            plain = e["plaintext"]
            assert plain["starttls_offered"] is True
            assert plain["auth_before_tls"] == []
            assert plain["command_injection"] is False
            assert plain["response_injection"] is False
            if e["service"] != "smtp":
                assert plain["plaintext_login"]["outcome"] == "refused", plain
        else:
            assert e["plaintext"] is None


def test_human_report_is_a_plain_table_when_piped_and_min_grade_passes(full_server):
    result = run_check("--min-grade", "A+", f"submissions://localhost:{full_server.ports['submissions']}",
                       f"imap://localhost:{full_server.ports['imap']}", ca=full_server.ca_path)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "\x1b[" not in out and "\x1b[" not in result.stderr.decode()
    assert f"submissions://localhost:{full_server.ports['submissions']}  A+" in out, out
    assert "summary" in out and "versions" in out and "certificate" in out


def test_without_the_ca_the_generated_certificate_is_not_trusted_and_min_grade_fails(full_server):
    target = f"submissions://localhost:{full_server.ports['submissions']}"
    result = run_check("--json", "--min-grade", "B", target)
    assert result.returncode == 1
    assert b"below --min-grade B" in result.stderr
    endpoint = only_endpoint(json.loads(result.stdout))
    assert endpoint["grade"] == "C"
    # sealpost sends its leaf alone; without --ca its issuer is unknown, as is a missing
    # intermediate's, and the message says both.
    assert finding_ids(endpoint) == ["cert_chain_incomplete"], explain(endpoint)
    assert "--ca" in endpoint["findings"][0]["message"]


# ---- weak servers from other software ----

@pytest.fixture
def ca(tmp_path):
    return CA(tmp_path / "ca")


def test_openssl_tls1_only_with_a_non_forward_secret_suite_is_caught(ca, tmp_path):
    cert, key = ca.issue("legacy", dns=["localhost"], kind="rsa")
    server = OpensslServer(cert, key, ["-tls1", "-cipher", "AES128-SHA@SECLEVEL=0"])
    try:
        for scheme in ("submissions", "imaps"):
            e = only_endpoint(check_json(f"{scheme}://localhost:{server.port}", ca=ca.cert,
                                         extra=("--timeout", "5")))
            assert accepted_versions(e) == {"TLSv1.0"}, explain(e)
            suites = e["cipher_suites"]
            assert suites["version"] == "TLSv1.0"
            assert [s["name"] for s in suites["suites"]] == ["TLS_RSA_WITH_AES_128_CBC_SHA"]
            assert "no_forward_secrecy" in suites["suites"][0]["weaknesses"]
            ids = finding_ids(e)
            assert "tls10" in ids and "no_forward_secrecy" in ids and "no_tls12" in ids, explain(e)
            assert e["grade"] == "C", explain(e)
            # The chain came from the legacy handshake: rustls could not connect at all.
            assert e["certificate"]["key_type"] == "RSA" and e["certificate"]["trusted"]
    finally:
        server.stop()


def test_starttls_server_answering_pipelined_commands_inside_tls_is_caught(ca):
    cert, key = ca.issue("inject", dns=["localhost"])
    vulnerable = StarttlsSmtpServer(cert, key, answer_pipelined=True)
    fixed = StarttlsSmtpServer(cert, key)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{vulnerable.port}", ca=ca.cert))
        assert e["plaintext"]["command_injection"] is True, explain(e)
        assert "starttls_command_injection" in finding_ids(e)
        assert e["grade"] == "F"
        e = only_endpoint(check_json(f"smtp://localhost:{fixed.port}", ca=ca.cert))
        assert e["plaintext"]["command_injection"] is False, explain(e)
        assert "starttls_command_injection" not in finding_ids(e)
    finally:
        vulnerable.stop()
        fixed.stop()


def test_auth_plain_offered_before_starttls_is_caught(ca):
    cert, key = ca.issue("authplain", dns=["localhost"])
    server = StarttlsSmtpServer(cert, key, auth_before_tls=True)
    try:
        e = only_endpoint(check_json(f"submission://localhost:{server.port}", ca=ca.cert))
        plain = e["plaintext"]
        assert plain["starttls_offered"] is True
        assert plain["auth_before_tls"] == ["PLAIN", "LOGIN"], plain
        assert plain["plaintext_login"]["outcome"] == "evaluated", plain
        assert plain["plaintext_login"]["reply"].startswith("535")
        ids = finding_ids(e)
        assert "auth_before_tls" in ids and "plaintext_login" in ids, explain(e)
        assert e["grade"] == "F"
    finally:
        server.stop()


def test_plaintext_sent_after_the_starttls_reply_is_caught(ca):
    cert, key = ca.issue("respinject", dns=["localhost"])
    server = StarttlsSmtpServer(cert, key, inject_response=True)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{server.port}", ca=ca.cert))
        assert e["plaintext"]["response_injection"] is True, explain(e)
        assert "starttls_response_injection" in finding_ids(e)
        # The injected bytes were discarded, so the handshake itself still worked.
        assert e["negotiated"]["version"] == "TLSv1.3"
    finally:
        server.stop()


def test_a_starttls_port_without_starttls_is_f(ca):
    cert, key = ca.issue("plainonly", dns=["localhost"])
    server = StarttlsSmtpServer(cert, key, starttls=False)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{server.port}", extra=("--timeout", "5")))
        assert e["plaintext"]["starttls_offered"] is False, explain(e)
        assert finding_ids(e) == ["starttls_not_offered"], explain(e)
        assert e["grade"] == "F"
        assert [err["error"] for err in e["errors"]] == ["STARTTLS is not offered"], e["errors"]
    finally:
        server.stop()


def test_expired_certificate_is_caught(ca):
    cert, key = expired_leaf(ca, "expired")
    server = StarttlsSmtpServer(cert, key)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{server.port}", ca=ca.cert))
        assert e["certificate"]["expired"] is True
        assert e["certificate"]["days_to_expiry"] < -365
        assert finding_ids(e)[0] == "cert_expired", explain(e)
        assert e["grade"] == "F"
    finally:
        server.stop()


def test_certificate_for_another_name_is_caught(ca):
    cert, key = ca.issue("wrongname", dns=["mail.other.test"])
    server = StarttlsSmtpServer(cert, key)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{server.port}", ca=ca.cert))
        assert e["certificate"]["trusted"] is True
        assert e["certificate"]["name_matches"] is False
        assert "cert_name_mismatch" in finding_ids(e), explain(e)
        assert e["grade"] == "C"
    finally:
        server.stop()


def test_incomplete_chain_is_caught(ca):
    cert, key = leaf_behind_intermediate(ca, "nochain")
    server = StarttlsSmtpServer(cert, key)
    try:
        e = only_endpoint(check_json(f"smtp://localhost:{server.port}", ca=ca.cert))
        assert e["certificate"]["chain_complete"] is False
        assert "incomplete chain" in e["certificate"]["trust_error"]
        assert "cert_chain_incomplete" in finding_ids(e), explain(e)
        assert e["grade"] == "C"
    finally:
        server.stop()


def test_nothing_listening_is_f(tmp_path):
    port = free_port()
    result = run_check("--json", "--min-grade", "F", f"smtp://127.0.0.1:{port}")
    e = only_endpoint(json.loads(result.stdout))
    assert e["grade"] == "F" and finding_ids(e) == ["unreachable"]
    assert e["address"] is None
    assert result.returncode == 0  # F is not below F


def test_a_target_that_is_not_one_is_refused_with_a_reason():
    result = run_check("http://example.test")
    assert result.returncode != 0
    assert b"unknown scheme" in result.stderr


# ---- domains, against a real DNS server and MTA-STS policies served over HTTPS ----

def loopback_ip() -> str:
    """A loopback address of its own, so this test's MX (port 25) and policy server (443)
    cannot collide with anything else on the machine (all of 127/8 is loopback)."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class PolicyServer:
    """https://mta-sts.<domain>/.well-known/mta-sts.txt on ip:443, one policy per Host."""

    def __init__(self, ip, cert, key, policies: dict):
        policies = {f"mta-sts.{d}": text.encode() for d, text in policies.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = policies.get(self.headers.get("Host", "").split(":")[0])
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

        self.httpd = http.server.ThreadingHTTPServer((ip, 443), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def dkim_rsa_public_key(tmp_path) -> str:
    key = new_key(tmp_path / "dkim-key.pem", "rsa")
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return base64.b64encode(der).decode()


def spki_sha256(cert_pem) -> str:
    pub = subprocess.run(["openssl", "x509", "-in", str(cert_pem), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_domains_mta_sts_dane_spf_and_dmarc_against_a_real_dns_server(make_server, ca, tmp_path):
    ip = loopback_ip()
    server = make_server(config={"hostname": "mx.good.test", "listeners": {"smtp": f"{ip}:25"}})
    cert, key = ca.issue("mta-sts", dns=["mta-sts.good.test", "mta-sts.stale.test"])
    policy = "version: STSv1\nmode: enforce\nmx: {}\nmax_age: 86400\n"
    https = PolicyServer(ip, cert, key, {"good.test": policy.format("mx.good.test"),
                                         "stale.test": policy.format("mx1.stale.test")})
    dkim = txt_strings(f"v=DKIM1; k=rsa; p={dkim_rsa_public_key(tmp_path)}")
    tlsa = spki_sha256(server.generated_tls_dir / "cert.pem")
    includes = " ".join(f"include:i{n}.spf11.test" for n in range(1, 12))
    zones = {
        "good.test": f"""
@ MX 10 mx.good.test.
mx A {ip}
_25._tcp.mx TLSA 3 1 1 {tlsa}
mta-sts A {ip}
_mta-sts TXT "v=STSv1; id=20261128T000000"
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.test"
@ TXT "v=spf1 mx -all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
sel._domainkey TXT {dkim}
""",
        "stale.test": f"""
@ MX 10 mx1.stale.test.
@ MX 20 mx2.stale.test.
mx1 A {ip}
_25._tcp.mx1 TLSA 3 1 1 {"00" * 32}
mx2 A {ip}
mta-sts A {ip}
_mta-sts TXT "v=STSv1; id=1"
@ TXT "v=spf1 mx -all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@stale.test"
""",
        "spf11.test": "@ MX 10 mx.good.test.\n"
                      f'@ TXT "v=spf1 {includes} -all"\n'
                      + "".join(f'i{n} TXT "v=spf1 -all"\n' for n in range(1, 12))
                      + '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:d@spf11.test"\n',
        "nonedmarc.test": '@ MX 10 mx.good.test.\n@ TXT "v=spf1 -all"\n_dmarc TXT "v=DMARC1; p=none"\n',
    }
    config = tmp_path / "check.toml"
    try:
        with TestDns(zones) as dns:
            config.write_text(f'[dns]\nnameservers = ["{dns.address}"]\n')
            started = time.monotonic()
            result = subprocess.run(
                [sealpost_bin(), "--config", str(config), "check", "--json", "--ca", str(server.ca_path),
                 "--ca", str(ca.cert), "--dkim-selector", "sel",
                 "good.test", "stale.test", "spf11.test", "nonedmarc.test"],
                capture_output=True, timeout=CHECK_TIMEOUT)
            print(f"4 domains and 3 MX hosts checked in {time.monotonic() - started:.2f} s")
    finally:
        https.stop()
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    domains = {d["domain"]: d for d in report["domains"]}
    endpoints = {e["host"]: e for e in report["endpoints"]}
    assert sorted(endpoints) == ["mx.good.test", "mx1.stale.test", "mx2.stale.test"]

    good = domains["good.test"]
    assert [m["host"] for m in good["mx"]] == ["mx.good.test"]
    assert good["mta_sts"]["policy"] == {"mode": "enforce", "max_age": 86400, "mx": ["mx.good.test"]}
    assert good["mta_sts"]["unmatched_mx"] == []
    assert good["tls_rpt"].startswith("v=TLSRPTv1")
    assert good["spf"]["lookups"] == 1 and good["spf"]["errors"] == []
    assert good["dmarc"]["policy"] == "reject" and good["dmarc"]["found_at"] == "good.test"
    assert good["dkim"] == [dict(good["dkim"][0], key_type="rsa", key_bits=2048, error=None)]
    [good_tlsa] = good["tlsa"]
    assert good_tlsa["records"] == [f"3 1 1 {tlsa}"] and good_tlsa["matches"] is True
    print("DNSSEC status of the unsigned test zone:", good_tlsa["dnssec"])
    assert good_tlsa["dnssec"] != "secure"  # the test zones are not signed
    assert good["grade"] == "A+", json.dumps(good["findings"], indent=1)
    mx = endpoints["mx.good.test"]
    assert mx["service"] == "smtp" and mx["port"] == 25 and mx["address"] == f"{ip}:25"
    assert mx["grade"] == "A+", explain(mx)

    stale = domains["stale.test"]
    assert stale["mta_sts"]["unmatched_mx"] == ["mx2.stale.test"]
    assert "mta_sts_mx_mismatch" in finding_ids(stale)
    assert [t["matches"] for t in stale["tlsa"]] == [False]
    assert "tlsa_mismatch" in finding_ids(stale)
    assert "mx2.stale.test" in next(f["message"] for f in stale["findings"] if f["id"] == "mta_sts_mx_mismatch")

    spf11 = domains["spf11.test"]
    assert spf11["spf"]["lookups"] == 11
    assert "spf_too_many_lookups" in finding_ids(spf11)
    assert spf11["grade"] == "C"

    none = domains["nonedmarc.test"]
    assert none["dmarc"]["policy"] == "none"
    assert "dmarc_p_none" in finding_ids(none)
    assert "no_mta_sts_or_dane" in finding_ids(none)
