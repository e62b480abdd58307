//! Validation against a real signed tree: sealpost-testdns signs the root and the zones
//! marked signed, and its root key is the trust anchor written to a file, as a deployment
//! would configure `[dns] trust_anchor`.

use std::path::PathBuf;
use std::time::Duration;

use sealpost_testdns::{TestDns, Zone};
use tempfile::TempDir;

use super::*;
use crate::resolver::ResolverSettings;

const SIGNED: &str = r#"
@        MX  10 mx
mx       A   192.0.2.10
mx       AAAA 2001:db8::10
_25._tcp.mx TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_25._tcp.mx TLSA 2 0 2 00ff
alias    CNAME mx
notlsa   A   192.0.2.11
tampered A   192.0.2.12
_25._tcp.tampered TLSA 3 1 1 aabbccdd
"#;

const UNSIGNED: &str = r#"
@        MX  10 mx
mx       A   192.0.2.20
_25._tcp.mx TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"#;

const BROKEN: &str = r#"
@        MX  10 mx
mx       A   192.0.2.30
"#;

/// dnssec.test (signed), example.test (unsigned), broken.test (signed, every signature
/// bad), and the TLSA of tampered.dnssec.test with a bad signature.
async fn server() -> TestDns {
    TestDns::builder()
        .zone(Zone::parse("dnssec.test", SIGNED).unwrap().signed())
        .zone(Zone::parse("example.test", UNSIGNED).unwrap())
        .zone(Zone::parse("broken.test", BROKEN).unwrap().signed())
        .bogus("_25._tcp.tampered.dnssec.test")
        .unwrap()
        .bogus("broken.test")
        .unwrap()
        .silent("slow.dnssec.test")
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// The server's trust anchor, written where a resolver can be pointed at it.
struct Anchor {
    _dir: TempDir,
    path: PathBuf,
}

fn anchor_file(text: &str) -> Anchor {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("anchor.key");
    std::fs::write(&path, text).unwrap();
    Anchor { _dir: dir, path }
}

fn resolver(dns: &TestDns, trust_anchor: Option<&Anchor>) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(500),
        attempts: 2,
        trust_anchor: trust_anchor.map(|anchor| anchor.path.clone()),
    })
    .unwrap()
}

async fn trusting_resolver(dns: &TestDns) -> (Resolver, Anchor) {
    let anchor = anchor_file(
        dns.trust_anchor()
            .expect("signed zones make a trust anchor"),
    );
    (resolver(dns, Some(&anchor)), anchor)
}

#[tokio::test]
async fn signed_zone_answers_are_secure_under_the_test_anchor() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;

    let mx = resolver.mx_validated("dnssec.test").await.unwrap();
    assert_eq!(mx.dnssec, Dnssec::Secure);
    assert_eq!(mx.records[0].exchange, "mx.dnssec.test");

    let mut ips = resolver.ip_validated("mx.dnssec.test").await.unwrap();
    ips.records.sort();
    assert_eq!(ips.dnssec, Dnssec::Secure);
    assert_eq!(
        ips.records,
        vec![
            "192.0.2.10".parse::<IpAddr>().unwrap(),
            "2001:db8::10".parse().unwrap()
        ]
    );

    let tlsa = resolver.tlsa("_25._tcp.mx.dnssec.test").await.unwrap();
    assert_eq!(tlsa.dnssec, Dnssec::Secure);
    assert_eq!(tlsa.records.len(), 2);
}

#[tokio::test]
async fn tlsa_fields_are_parsed() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;
    let mut records = resolver
        .tlsa("_25._tcp.mx.dnssec.test.")
        .await
        .unwrap()
        .records;
    records.sort_by_key(|tlsa| tlsa.usage);
    let mut digest = Vec::new();
    for _ in 0..4 {
        digest.extend([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    }
    assert_eq!(
        records,
        vec![
            Tlsa {
                usage: 2,
                selector: 0,
                matching: 2,
                data: vec![0x00, 0xff],
            },
            Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: digest,
            },
        ]
    );
}

#[tokio::test]
async fn a_secure_cname_chain_is_secure() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;
    let ips = resolver.ip_validated("alias.dnssec.test").await.unwrap();
    assert_eq!(ips.dnssec, Dnssec::Secure);
    assert!(ips.records.contains(&"192.0.2.10".parse().unwrap()));
}

#[tokio::test]
async fn a_secure_denial_of_tlsa_is_an_empty_secure_answer() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;
    // NXDOMAIN below an existing name, and NODATA at a name with other records.
    for name in ["_25._tcp.notlsa.dnssec.test", "notlsa.dnssec.test"] {
        let tlsa = resolver.tlsa(name).await.unwrap();
        assert_eq!(
            tlsa,
            Validated {
                records: vec![],
                dnssec: Dnssec::Secure
            },
            "{name}"
        );
    }
    assert_eq!(
        resolver.mx_validated("missing.dnssec.test").await,
        Err(LookupError::NxDomain("missing.dnssec.test".into()))
    );
    assert_eq!(
        resolver.ip_validated("dnssec.test").await,
        Err(LookupError::NoData("dnssec.test".into()))
    );
}

#[tokio::test]
async fn unsigned_zone_is_insecure() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;

    let mx = resolver.mx_validated("example.test").await.unwrap();
    assert_eq!(mx.dnssec, Dnssec::Insecure);
    assert_eq!(mx.records[0].exchange, "mx.example.test");
    let ips = resolver.ip_validated("mx.example.test").await.unwrap();
    assert_eq!(ips.dnssec, Dnssec::Insecure);
    assert_eq!(ips.records, vec!["192.0.2.20".parse::<IpAddr>().unwrap()]);

    // Records that would pin a certificate, but nothing vouches for them.
    let tlsa = resolver.tlsa("_25._tcp.mx.example.test").await.unwrap();
    assert_eq!(tlsa.dnssec, Dnssec::Insecure);
    assert_eq!(tlsa.records.len(), 1);
    let none = resolver.tlsa("_25._tcp.other.example.test").await.unwrap();
    assert_eq!(
        none,
        Validated {
            records: vec![],
            dnssec: Dnssec::Insecure
        }
    );
}

#[tokio::test]
async fn tampered_signatures_are_bogus_and_withhold_the_records() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;

    // The host's address is fine; only its TLSA RRset was tampered with.
    let ips = resolver.ip_validated("tampered.dnssec.test").await.unwrap();
    assert_eq!(ips.dnssec, Dnssec::Secure);
    let tlsa = resolver
        .tlsa("_25._tcp.tampered.dnssec.test")
        .await
        .unwrap();
    assert_eq!(
        tlsa,
        Validated {
            records: vec![],
            dnssec: Dnssec::Bogus
        }
    );

    // A zone whose DS and records all carry bad signatures: nothing in it is secure.
    let mx = resolver.mx_validated("broken.test").await.unwrap();
    assert_eq!(mx.dnssec, Dnssec::Bogus);
    assert!(mx.records.is_empty());
    let ips = resolver.ip_validated("mx.broken.test").await.unwrap();
    assert_eq!(ips.dnssec, Dnssec::Bogus);
}

#[tokio::test]
async fn signed_zone_is_not_secure_without_its_anchor() {
    let dns = server().await;
    let other = TestDns::builder().dnssec().start().await.unwrap();
    let wrong = anchor_file(other.trust_anchor().unwrap());

    // The built-in root key, and another server's root key: neither signed this tree.
    for resolver in [resolver(&dns, None), resolver(&dns, Some(&wrong))] {
        let mx = resolver.mx_validated("dnssec.test").await.unwrap();
        assert_eq!(mx.dnssec, Dnssec::Bogus);
        let tlsa = resolver.tlsa("_25._tcp.mx.dnssec.test").await.unwrap();
        assert_eq!(tlsa.dnssec, Dnssec::Bogus);
        // The plain lookups do not validate and still answer.
        assert_eq!(resolver.mx("dnssec.test").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn status_is_the_same_when_answered_from_the_cache() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;
    for _ in 0..2 {
        assert_eq!(
            resolver.mx_validated("dnssec.test").await.unwrap().dnssec,
            Dnssec::Secure
        );
        assert_eq!(
            resolver
                .tlsa("_25._tcp.notlsa.dnssec.test")
                .await
                .unwrap()
                .dnssec,
            Dnssec::Secure
        );
        assert_eq!(
            resolver
                .tlsa("_25._tcp.mx.example.test")
                .await
                .unwrap()
                .dnssec,
            Dnssec::Insecure
        );
        assert_eq!(
            resolver
                .tlsa("_25._tcp.tampered.dnssec.test")
                .await
                .unwrap()
                .dnssec,
            Dnssec::Bogus
        );
    }
}

#[tokio::test]
async fn unanswered_tlsa_query_is_a_temporary_error() {
    let dns = server().await;
    let (resolver, _anchor) = trusting_resolver(&dns).await;
    let error = resolver
        .tlsa("_25._tcp.slow.dnssec.test")
        .await
        .unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
}

#[test]
fn a_trust_anchor_file_without_keys_is_refused() {
    let empty = anchor_file("; no keys\n");
    let settings = ResolverSettings {
        trust_anchor: Some(empty.path.clone()),
        nameservers: vec!["127.0.0.1:53".parse().unwrap()],
        ..ResolverSettings::default()
    };
    assert!(Resolver::new(&settings).is_err());
    let missing = ResolverSettings {
        trust_anchor: Some(empty.path.with_file_name("missing.key")),
        ..settings
    };
    assert!(Resolver::new(&missing).is_err());
}

/// Why tests that validate must start sealpost-testdns with DNSSEC: a plain test server's
/// root is unsigned, and under the real root keys that is a forged root, so every answer is
/// bogus and DANE would defer all mail.
#[tokio::test]
async fn a_test_server_without_dnssec_is_bogus_under_the_root_keys() {
    let dns = TestDns::builder()
        .zone(Zone::parse("example.test", UNSIGNED).unwrap())
        .start()
        .await
        .unwrap();
    let resolver = resolver(&dns, None);
    assert_eq!(
        resolver.mx_validated("example.test").await.unwrap().dnssec,
        Dnssec::Bogus
    );
    assert_eq!(resolver.mx("example.test").await.unwrap().len(), 1);
}

#[tokio::test]
async fn with_dnssec_and_no_signed_zone_every_zone_is_insecure() {
    let dns = TestDns::builder()
        .zone(Zone::parse("example.test", UNSIGNED).unwrap())
        .dnssec()
        .start()
        .await
        .unwrap();
    let anchor = anchor_file(dns.trust_anchor().unwrap());
    let resolver = resolver(&dns, Some(&anchor));
    assert_eq!(
        resolver.mx_validated("example.test").await.unwrap().dnssec,
        Dnssec::Insecure
    );
    assert_eq!(
        resolver
            .ip_validated("mx.example.test")
            .await
            .unwrap()
            .dnssec,
        Dnssec::Insecure
    );
    // Outside every zone: a (secure) NXDOMAIN from the signed root.
    assert_eq!(
        resolver.mx_validated("nothing.test").await,
        Err(LookupError::NxDomain("nothing.test".into()))
    );
    assert_eq!(
        resolver.tlsa("_25._tcp.nothing.test").await.unwrap(),
        Validated {
            records: vec![],
            dnssec: Dnssec::Secure
        }
    );
}
