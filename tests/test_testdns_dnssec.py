"""sealpost-testdns serves a DNSSEC tree that clients no one here wrote accept: dnspython
walks the chain from the written trust anchor (root DNSKEY -> DS -> zone DNSKEY -> RRsets),
and BIND's validating `delv` (Debian package bind9-dnsutils) reports the same verdicts:
signed zone secure, unsigned zone provably insecure, tampered records bogus.
"""

import importlib
import shutil
import subprocess
import sys

import dns._features

# dnspython 2.9 switches DNSSEC validation off unless python3-cryptography >= 50 is installed
# (scripts/test should install it); the ECDSA P-256 verification used here works on the
# older releases too, so turn it on (dnspython's documented `force` workaround) rather than
# fail for a version number.
if not dns._features.have("dnssec"):
    dns._features.force("dnssec", True)
    if "dns.dnssec" in sys.modules:
        importlib.reload(sys.modules["dns.dnssec"])

import dns.dnssec  # noqa: E402 (after the feature switch above)
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.zone  # noqa: E402
import pytest  # noqa: E402

from testdns import TestDns  # noqa: E402

SIGNED = """
@            MX   10 mx
mx           A    192.0.2.10
_25._tcp.mx  TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
tampered     A    192.0.2.11
_25._tcp.tampered TLSA 3 1 1 aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899
"""

UNSIGNED = """
@            MX   10 mx
mx           A    192.0.2.20
"""

ROOT = dns.name.root


@pytest.fixture(scope="module")
def tree():
    with TestDns({"dnssec.test": SIGNED, "example.test": UNSIGNED},
                 signed=["dnssec.test"], bogus=["_25._tcp.tampered.dnssec.test"]) as server:
        yield server


def ask(server, name, rdtype):
    host, port = server.address.rsplit(":", 1)
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.tcp(query, host, port=int(port), timeout=5)


def rrsets(response, name, rdtype, section="answer"):
    """The RRset of `rdtype` at `name` and its RRSIG RRset."""
    records = getattr(response, section)
    name = dns.name.from_text(name)
    rrset = next(r for r in records if r.name == name and r.rdtype == rdtype)
    sigs = next(r for r in records if r.name == name and r.rdtype == dns.rdatatype.RRSIG
                and r.covers == rdtype)
    return rrset, sigs


def anchor_keys(server):
    """The trust anchor file parsed by dnspython: the root's DNSKEY RRset."""
    text = open(server.trust_anchor).read()
    zone_like = dns.zone.from_text(text, origin=ROOT, relativize=False, check_origin=False)
    return zone_like.find_rrset(ROOT, dns.rdatatype.DNSKEY)


def validated_keys(server, zone):
    """Walks from the anchor to `zone`'s DNSKEY RRset, validating each step."""
    root_keys, root_sigs = rrsets(ask(server, ".", "DNSKEY"), ".", dns.rdatatype.DNSKEY)
    anchor = anchor_keys(server)
    assert set(anchor) <= set(root_keys), "the served root key is the written anchor"
    dns.dnssec.validate(root_keys, root_sigs, {ROOT: anchor})

    ds, ds_sigs = rrsets(ask(server, zone, "DS"), zone, dns.rdatatype.DS)
    dns.dnssec.validate(ds, ds_sigs, {ROOT: root_keys})

    owner = dns.name.from_text(zone)
    keys, key_sigs = rrsets(ask(server, zone, "DNSKEY"), zone, dns.rdatatype.DNSKEY)
    digests = {dns.dnssec.make_ds(owner, key, "SHA256") for key in keys}
    assert set(ds) & digests, "the parent's DS matches the zone's key"
    dns.dnssec.validate(keys, key_sigs, {owner: keys})
    return keys


def test_trust_anchor_is_an_ecdsa_p256_root_dnskey(tree):
    anchor = anchor_keys(tree)
    assert [key.algorithm for key in anchor] == [dns.dnssec.Algorithm.ECDSAP256SHA256]
    assert all(key.flags == 257 for key in anchor)


def test_signed_zone_records_validate_from_the_trust_anchor(tree):
    keys = validated_keys(tree, "dnssec.test.")
    zone = dns.name.from_text("dnssec.test.")
    for name, rdtype in [("dnssec.test.", dns.rdatatype.MX),
                         ("mx.dnssec.test.", dns.rdatatype.A),
                         ("_25._tcp.mx.dnssec.test.", dns.rdatatype.TLSA)]:
        rrset, sigs = rrsets(ask(tree, name, dns.rdatatype.to_text(rdtype)), name, rdtype)
        dns.dnssec.validate(rrset, sigs, {zone: keys})


def test_missing_tlsa_in_signed_zone_is_denied_by_a_signed_nsec(tree):
    keys = validated_keys(tree, "dnssec.test.")
    response = ask(tree, "_25._tcp.nope.dnssec.test.", "TLSA")
    assert response.rcode() == dns.rcode.NXDOMAIN
    nsecs = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsecs
    for nsec in nsecs:
        rrset, sigs = rrsets(response, nsec.name.to_text(), dns.rdatatype.NSEC, "authority")
        dns.dnssec.validate(rrset, sigs, {dns.name.from_text("dnssec.test."): keys})


def test_unsigned_zone_is_proven_unsigned_by_the_roots_nsec(tree):
    root_keys, root_sigs = rrsets(ask(tree, ".", "DNSKEY"), ".", dns.rdatatype.DNSKEY)
    dns.dnssec.validate(root_keys, root_sigs, {ROOT: anchor_keys(tree)})
    response = ask(tree, "example.test.", "DS")
    assert not response.answer
    nsec, sigs = rrsets(response, "example.test.", dns.rdatatype.NSEC, "authority")
    dns.dnssec.validate(nsec, sigs, {ROOT: root_keys})
    # "next-name NS RRSIG NSEC": a delegation, and no DS at it.
    types = {dns.rdatatype.from_text(t) for t in nsec[0].to_text().split()[1:]}
    assert dns.rdatatype.NS in types and dns.rdatatype.DS not in types
    # The zone itself answers without signatures.
    answer = ask(tree, "mx.example.test.", "A")
    assert not [r for r in answer.answer if r.rdtype == dns.rdatatype.RRSIG]


def test_tampered_records_fail_validation(tree):
    keys = validated_keys(tree, "dnssec.test.")
    zone = dns.name.from_text("dnssec.test.")
    name = "_25._tcp.tampered.dnssec.test."
    rrset, sigs = rrsets(ask(tree, name, "TLSA"), name, dns.rdatatype.TLSA)
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(rrset, sigs, {zone: keys})
    # The name's neighbours are untouched.
    rrset, sigs = rrsets(ask(tree, "tampered.dnssec.test.", "A"), "tampered.dnssec.test.",
                         dns.rdatatype.A)
    dns.dnssec.validate(rrset, sigs, {zone: keys})


def test_plain_queries_get_no_dnssec_records(tree):
    host, port = tree.address.rsplit(":", 1)
    response = dns.query.udp(dns.message.make_query("mx.dnssec.test.", "A"), host,
                             port=int(port), timeout=5)
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.A]


def delv(server, name, rdtype, anchor_file):
    host, port = server.address.rsplit(":", 1)
    run = subprocess.run(["delv", f"@{host}", "-p", port, "-a", anchor_file, name, rdtype],
                         capture_output=True, text=True, timeout=30)
    return run.stdout + run.stderr


@pytest.mark.skipif(shutil.which("delv") is None, reason="delv (Debian bind9-dnsutils) not installed")
def test_bind_delv_validates_with_the_trust_anchor(tree, tmp_path):
    # delv reads anchors in BIND's syntax: the same DNSKEY, rewritten.
    key = next(iter(anchor_keys(tree)))
    public = key.to_text().split(maxsplit=3)[3].replace(" ", "")
    anchor = tmp_path / "anchor.conf"
    anchor.write_text(f'trust-anchors {{ . static-key {key.flags} {key.protocol} '
                      f'{int(key.algorithm)} "{public}"; }};\n')

    assert "; fully validated" in delv(tree, "mx.dnssec.test", "A", str(anchor))
    assert "; fully validated" in delv(tree, "_25._tcp.mx.dnssec.test", "TLSA", str(anchor))
    assert "; unsigned answer" in delv(tree, "mx.example.test", "A", str(anchor))
    # Denials, including one two labels below the closest existing name (the wildcard proof).
    assert "; negative response, fully validated" in delv(tree, "mx.dnssec.test", "TLSA",
                                                           str(anchor))
    assert "; negative response, fully validated" in delv(tree, "_25._tcp.nohost.dnssec.test",
                                                           "TLSA", str(anchor))
    bogus = delv(tree, "_25._tcp.tampered.dnssec.test", "TLSA", str(anchor))
    assert "resolution failed" in bogus and "fully validated" not in bogus, bogus
