use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use super::*;
use crate::keys::KeyDirectory;

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.net>\r\n\
Subject: Lunch\r\n\
Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\
Message-ID: <1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
X-Mailer: none of your business\r\n\
\r\n\
Noon at the usual place?\r\n";

fn today() -> time::Date {
    time::macros::date!(2026 - 11 - 28)
}

/// DNS answers for mail-auth's verifier, so verification needs no network.
#[derive(Default)]
struct TxtRecords(Mutex<HashMap<Box<str>, Txt>>);

impl TxtRecords {
    fn publish(&self, name: &str, record: &str) {
        let key = DomainKey::parse(record.as_bytes()).expect("a valid DKIM key record");
        let txt = Txt::from(key);
        let mut map = self.0.lock().unwrap();
        map.insert(format!("{name}.").into_boxed_str(), txt.clone());
        map.insert(name.into(), txt);
    }

    fn publish_domain(&self, data_dir: &Path, domain: &str) {
        let keys = KeyDirectory::new(data_dir).load(domain).unwrap().unwrap();
        for key in &keys.keys {
            self.publish(
                &format!("{}._domainkey.{domain}", key.selector),
                &key.dns_record().unwrap(),
            );
        }
    }
}

impl ResolverCache<Box<str>, Txt> for TxtRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// Each signature's result, in header order.
async fn verify(records: &TxtRecords, message: &[u8]) -> Vec<DkimResult> {
    let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
    let parsed = AuthenticatedMessage::parse(message).expect("a parsable message");
    authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(records))
        .await
        .into_iter()
        .map(|output| output.result().clone())
        .collect()
}

fn signed(signer: &DkimSigner, domain: &str, message: &[u8]) -> Vec<u8> {
    let mut out = signer.sign(domain, message).expect("the domain has keys");
    out.extend_from_slice(message);
    out
}

fn signature_fields(headers: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(headers).unwrap();
    text.split("DKIM-Signature: ")
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("\r\n\t", ""))
        .collect()
}

fn tag<'a>(field: &'a str, name: &str) -> &'a str {
    field
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {field}"))
}

#[tokio::test]
async fn signs_with_rsa_and_ed25519_and_both_verify_with_mail_auth() {
    let data = tempfile::tempdir().unwrap();
    KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    let signer = DkimSigner::load(data.path()).unwrap();

    let headers = signer.sign("example.org", MESSAGE).unwrap();
    assert!(headers.ends_with(b"\r\n"));
    let fields = signature_fields(&headers);
    assert_eq!(fields.len(), 2);
    assert_eq!(tag(&fields[0], "a"), "rsa-sha256");
    assert_eq!(tag(&fields[0], "s"), "s20261128r");
    assert_eq!(tag(&fields[1], "a"), "ed25519-sha256");
    assert_eq!(tag(&fields[1], "s"), "s20261128e");
    for field in &fields {
        assert_eq!(tag(field, "c"), "relaxed/relaxed");
        assert_eq!(tag(field, "d"), "example.org");
    }

    let records = TxtRecords::default();
    records.publish_domain(data.path(), "example.org");
    let mut message = headers.clone();
    message.extend_from_slice(MESSAGE);
    assert_eq!(
        verify(&records, &message).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
}

#[tokio::test]
async fn a_changed_subject_or_a_second_from_breaks_both_signatures() {
    let data = tempfile::tempdir().unwrap();
    KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    let signer = DkimSigner::load(data.path()).unwrap();
    let records = TxtRecords::default();
    records.publish_domain(data.path(), "example.org");
    let message = signed(&signer, "example.org", MESSAGE);

    let text = String::from_utf8(message.clone()).unwrap();
    let changed = text.replace("Subject: Lunch", "Subject: Dinner");
    let results = verify(&records, changed.as_bytes()).await;
    assert!(
        results.iter().all(|r| matches!(r, DkimResult::Fail(_))),
        "{results:?}"
    );

    // Oversigning: a From added above the signed one is covered by the extra h= entry.
    let added = text.replacen(
        "From: Alice",
        "From: Mallory <m@evil.test>\r\nFrom: Alice",
        1,
    );
    let results = verify(&records, added.as_bytes()).await;
    assert!(
        results.iter().all(|r| matches!(r, DkimResult::Fail(_))),
        "{results:?}"
    );

    // A field outside the signed set may be added in transit.
    let mut received = b"Received: from x by y; Sat, 28 Nov 2026 12:00:01 +0000\r\n".to_vec();
    received.extend_from_slice(&message);
    assert_eq!(
        verify(&records, &received).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn present_fields_are_signed_and_from_subject_date_to_cc_oversigned() {
    let data = tempfile::tempdir().unwrap();
    KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    let signer = DkimSigner::load(data.path()).unwrap();
    let fields = signature_fields(&signer.sign("example.org", MESSAGE).unwrap());
    for field in fields {
        let mut h: Vec<String> = tag(&field, "h")
            .split(':')
            .map(|name| name.trim().to_ascii_lowercase())
            .collect();
        h.sort();
        let count = |name: &str| h.iter().filter(|n| *n == name).count();
        // Present once, listed twice; Cc is absent and listed once (its absence signed).
        for name in ["from", "subject", "date", "to"] {
            assert_eq!(count(name), 2, "{name} in {h:?}");
        }
        assert_eq!(count("cc"), 1);
        for name in ["message-id", "mime-version", "content-type"] {
            assert_eq!(count(name), 1, "{name} in {h:?}");
        }
        // Absent recommended fields other than the oversigned ones are not listed, and
        // fields outside the set are not signed.
        assert_eq!(count("reply-to"), 0);
        assert_eq!(count("x-mailer"), 0);
    }
}

#[test]
fn unknown_domains_and_path_like_domains_get_no_signature() {
    let data = tempfile::tempdir().unwrap();
    KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    let signer = DkimSigner::load(data.path()).unwrap();
    assert!(signer.sign("example.net", MESSAGE).is_none());
    assert!(signer.sign("../example.org", MESSAGE).is_none());
    assert!(signer.sign("example.org/..", MESSAGE).is_none());
    assert!(signer.sign("", MESSAGE).is_none());
    assert!(signer.sign("EXAMPLE.ORG.", MESSAGE).is_some());
}

#[tokio::test]
async fn a_domain_added_or_rotated_while_running_is_used_without_a_reload() {
    let data = tempfile::tempdir().unwrap();
    let keys = KeyDirectory::new(data.path());
    let signer = DkimSigner::load(data.path()).unwrap();
    assert!(signer.sign("example.org", MESSAGE).is_none());

    keys.ensure("example.org", today()).unwrap();
    let first = signature_fields(&signer.sign("example.org", MESSAGE).unwrap());
    assert_eq!(tag(&first[0], "s"), "s20261128r");

    keys.rotate("example.org", today()).unwrap();
    let rotated = signer.sign("example.org", MESSAGE).unwrap();
    let fields = signature_fields(&rotated);
    assert_eq!(tag(&fields[0], "s"), "s20261128r2");
    assert_eq!(tag(&fields[1], "s"), "s20261128e2");

    let records = TxtRecords::default();
    records.publish_domain(data.path(), "example.org");
    let mut message = rotated;
    message.extend_from_slice(MESSAGE);
    assert_eq!(
        verify(&records, &message).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn reload_finds_domains_added_by_another_process() {
    let data = tempfile::tempdir().unwrap();
    let signer = DkimSigner::load(data.path()).unwrap();
    assert!(signer.domains().is_empty());
    KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    signer.reload().unwrap();
    assert_eq!(signer.domains(), ["example.org"]);
}

#[test]
fn a_damaged_key_file_is_an_error_at_load() {
    let data = tempfile::tempdir().unwrap();
    let (keys, _) = KeyDirectory::new(data.path())
        .ensure("example.org", today())
        .unwrap();
    std::fs::write(
        &keys.keys[0].path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(DkimSigner::load(data.path()).is_err());
}

/// The seed of RFC 8463 Appendix A.1 (also RFC 8032 §7.1 test 1) wrapped in PKCS#8.
fn rfc8463_pkcs8_pem() -> String {
    let seed = BASE64
        .decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
        .unwrap();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        BASE64.encode(der)
    )
}

const RFC8463_UNSIGNED: &[u8] = include_bytes!("testdata/rfc8463-unsigned.eml");
const RFC8463_SIGNED: &[u8] = include_bytes!("testdata/rfc8463-signed.eml");
const RFC8463_BRISBANE: &str = include_str!("testdata/rfc8463-brisbane.txt");
const RFC8463_TEST: &str = include_str!("testdata/rfc8463-test.txt");

/// Installs the RFC 8463 key as football.example.com's active Ed25519 key.
fn install_rfc8463_key(data_dir: &Path) {
    let dir = data_dir.join("dkim/football.example.com");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("brisbane.pem"), rfc8463_pkcs8_pem()).unwrap();
    std::fs::write(dir.join("selectors"), "ed25519-sha256 brisbane\n").unwrap();
}

#[test]
fn rfc8463_key_gives_the_published_key_record() {
    let data = tempfile::tempdir().unwrap();
    install_rfc8463_key(data.path());
    let keys = KeyDirectory::new(data.path())
        .load("football.example.com")
        .unwrap()
        .unwrap();
    assert_eq!(keys.keys[0].dns_record().unwrap(), RFC8463_BRISBANE.trim());
}

#[tokio::test]
async fn rfc8463_message_signed_by_us_has_the_rfc_body_hash_and_verifies() {
    let data = tempfile::tempdir().unwrap();
    install_rfc8463_key(data.path());
    let signer = DkimSigner::load(data.path()).unwrap();
    let headers = signer
        .sign("football.example.com", RFC8463_UNSIGNED)
        .unwrap();
    let fields = signature_fields(&headers);
    assert_eq!(fields.len(), 1);
    assert_eq!(
        tag(&fields[0], "bh"),
        "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
    );

    let records = TxtRecords::default();
    records.publish(
        "brisbane._domainkey.football.example.com",
        RFC8463_BRISBANE.trim(),
    );
    let mut message = headers;
    message.extend_from_slice(RFC8463_UNSIGNED);
    assert_eq!(verify(&records, &message).await, [DkimResult::Pass]);
}

#[tokio::test]
async fn rfc8463_appendix_a_signatures_verify() {
    let records = TxtRecords::default();
    records.publish(
        "brisbane._domainkey.football.example.com",
        RFC8463_BRISBANE.trim(),
    );
    records.publish("test._domainkey.football.example.com", RFC8463_TEST.trim());
    assert_eq!(
        verify(&records, RFC8463_SIGNED).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
}
