//! Every signature verified through the whole verifier, against a real DNS server:
//! RFC 6376's and RFC 8463's vectors, keys made here, and fixtures signed by dkimpy
//! (testdata/).

use crate::inbound::testing::{TestKey, dns};
use crate::inbound::{DkimCheck, DkimResult, InboundVerifier};

/// RFC 6376 Appendix A.2 with CRLF line ends and the header continuation lines indented
/// as printed (six spaces, eight for `b=`'s). c=simple/simple, so every byte of the signed
/// headers counts; dkimpy verifies it with the key of Appendix C.2 too.
const RFC6376_SIGNED: &[u8] = include_bytes!("../testdata/rfc6376-signed.eml");
const EXAMPLE_COM_ZONE: &str = include_str!("../testdata/example.com.zone");
const RFC8463_SIGNED: &[u8] = include_bytes!("../testdata/rfc8463-signed.eml");
const FOOTBALL_ZONE: &str = include_str!("../testdata/football.example.com.zone");
const RSA_SHA1: &[u8] = include_bytes!("../testdata/rsa-sha1.eml");
const LENGTH_LIMITED: &[u8] = include_bytes!("../testdata/length-limited.eml");
const LENGTH_LIMITED_APPENDED: &[u8] = include_bytes!("../testdata/length-limited-appended.eml");
const LEGACY_ZONE: &str = include_str!("../testdata/example.test.zone");

const MESSAGE: &[u8] = b"From: Alice <alice@example.test>\r\n\
To: bob@sealpost.test\r\n\
Subject: lunch\r\n\
\r\n\
See you at noon.\r\n";

async fn dkim_of(zones: &[(&str, &str)], silent: &[&str], message: &[u8]) -> Vec<DkimCheck> {
    let (_dns, resolver) = dns(zones, silent).await;
    InboundVerifier::new(resolver, "mx.sealpost.test")
        .verify(
            "192.0.2.1".parse().unwrap(),
            "client.example.test",
            "alice@example.test",
            message,
        )
        .await
        .dkim
}

fn results(checks: &[DkimCheck]) -> Vec<(DkimResult, &str, &str)> {
    checks
        .iter()
        .map(|check| {
            (
                check.result,
                check.selector.as_str(),
                check.algorithm.as_str(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rfc8463_ed25519_and_rsa_signatures_verify() {
    let checks = dkim_of(
        &[("football.example.com", FOOTBALL_ZONE)],
        &[],
        RFC8463_SIGNED,
    )
    .await;
    assert_eq!(
        results(&checks),
        vec![
            (DkimResult::Pass, "brisbane", "ed25519-sha256"),
            (DkimResult::Pass, "test", "rsa-sha256"),
        ]
    );
    assert_eq!(checks[0].domain, "football.example.com");
}

#[tokio::test]
async fn rfc6376_appendix_a_example_verifies_with_the_appendix_c_key() {
    let checks = dkim_of(&[("example.com", EXAMPLE_COM_ZONE)], &[], RFC6376_SIGNED).await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::Pass, "brisbane", "rsa-sha256")],
        "{checks:?}"
    );
    assert_eq!(checks[0].domain, "example.com");
}

#[tokio::test]
async fn rfc6376_example_with_refolded_signed_header_fails() {
    // c=simple headers: re-indenting the signed Received field breaks the signature,
    // while relaxed would not have noticed.
    let refolded = String::from_utf8_lossy(RFC6376_SIGNED)
        .replace("\r\n      by submitserver", "\r\n\tby submitserver");
    assert_ne!(refolded.as_bytes(), RFC6376_SIGNED);
    let checks = dkim_of(
        &[("example.com", EXAMPLE_COM_ZONE)],
        &[],
        refolded.as_bytes(),
    )
    .await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].result, DkimResult::Fail, "{checks:?}");
}

/// Both RFCs sign the same body, RFC 6376 with simple body canonicalization and RFC 8463
/// (whose copy has two spaces after "game.") with relaxed: each canonical form must hash
/// to the `bh=` they print.
#[test]
fn rfc6376_and_rfc8463_bodies_hash_to_the_printed_bh() {
    use base64::Engine as _;
    use mail_auth::common::headers::{Writable, Writer};
    use mail_auth::dkim::Canonicalization;
    struct Collect(Vec<u8>);
    impl Writer for Collect {
        fn write(&mut self, buf: &[u8]) {
            self.0.extend_from_slice(buf);
        }
    }
    let body_hash = |message: &[u8], canonicalization: Canonicalization| {
        let text = std::str::from_utf8(message).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let mut canonical = Collect(Vec::new());
        canonicalization
            .canonical_body(body.as_bytes(), 0)
            .write(&mut canonical);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical.0);
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    let printed = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";
    assert_eq!(body_hash(RFC6376_SIGNED, Canonicalization::Simple), printed);
    assert_eq!(
        body_hash(RFC8463_SIGNED, Canonicalization::Relaxed),
        printed
    );
    assert_ne!(
        body_hash(RFC8463_SIGNED, Canonicalization::Simple),
        printed,
        "the two spaces count under simple"
    );
}

#[tokio::test]
async fn rfc8463_message_with_changed_body_fails_both() {
    let tampered = String::from_utf8_lossy(RFC8463_SIGNED).replace("We lost", "We won");
    let checks = dkim_of(
        &[("football.example.com", FOOTBALL_ZONE)],
        &[],
        tampered.as_bytes(),
    )
    .await;
    for check in &checks {
        assert_eq!(check.result, DkimResult::Fail, "{check:?}");
        assert_eq!(check.reason.as_deref(), Some("body hash did not verify"));
    }
    assert_eq!(checks.len(), 2);
}

#[tokio::test]
async fn rfc8463_message_with_changed_signed_header_fails() {
    let tampered =
        String::from_utf8_lossy(RFC8463_SIGNED).replace("Is dinner ready?", "Free money");
    let checks = dkim_of(
        &[("football.example.com", FOOTBALL_ZONE)],
        &[],
        tampered.as_bytes(),
    )
    .await;
    assert!(
        checks.iter().all(|c| c.result == DkimResult::Fail),
        "{checks:?}"
    );
}

#[tokio::test]
async fn rsa_sha256_and_ed25519_signatures_made_here_verify() {
    let rsa = TestKey::rsa();
    let ed = TestKey::ed25519();
    let zone = format!(
        "r2048._domainkey TXT {}\ned._domainkey TXT {}\n",
        rsa.record(),
        ed.record()
    );
    let signed = rsa.sign(
        "example.test",
        "r2048",
        &ed.sign("example.test", "ed", MESSAGE),
    );
    let checks = dkim_of(&[("example.test", &zone)], &[], &signed).await;
    assert_eq!(
        results(&checks),
        vec![
            (DkimResult::Pass, "r2048", "rsa-sha256"),
            (DkimResult::Pass, "ed", "ed25519-sha256"),
        ]
    );
}

#[tokio::test]
async fn rsa_sha1_signature_is_never_valid() {
    let checks = dkim_of(&[("example.test", LEGACY_ZONE)], &[], RSA_SHA1).await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::Fail, "legacy", "rsa-sha1")]
    );
    assert!(checks[0].reason.as_deref().unwrap().contains("RFC 8301"));
}

#[tokio::test]
async fn length_limit_covering_the_whole_body_passes() {
    let checks = dkim_of(&[("example.test", LEGACY_ZONE)], &[], LENGTH_LIMITED).await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::Pass, "legacy", "rsa-sha256")]
    );
}

#[tokio::test]
async fn content_appended_beyond_the_length_limit_makes_the_signature_unacceptable() {
    let checks = dkim_of(
        &[("example.test", LEGACY_ZONE)],
        &[],
        LENGTH_LIMITED_APPENDED,
    )
    .await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::Policy, "legacy", "rsa-sha256")]
    );
    assert!(checks[0].reason.as_deref().unwrap().contains("l=42"));
}

#[tokio::test]
async fn missing_key_is_permerror_and_unanswered_key_query_is_temperror() {
    let key = TestKey::ed25519();
    let signed = key.sign("example.test", "gone", MESSAGE);
    let checks = dkim_of(&[("example.test", "")], &[], &signed).await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::PermError, "gone", "ed25519-sha256")]
    );

    let signed = key.sign("example.test", "slow", MESSAGE);
    let checks = dkim_of(
        &[("example.test", "")],
        &["slow._domainkey.example.test"],
        &signed,
    )
    .await;
    assert_eq!(
        results(&checks),
        vec![(DkimResult::TempError, "slow", "ed25519-sha256")]
    );
}

#[tokio::test]
async fn unsigned_message_has_no_dkim_results() {
    assert!(
        dkim_of(&[("example.test", "")], &[], MESSAGE)
            .await
            .is_empty()
    );
}
