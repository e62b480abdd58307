//! Port 25 with the verifier and submission with the signer, end to end through the
//! driver, against a real DNS server on loopback and DKIM keys made on disk.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_dns::{Resolver, ResolverSettings};
use sealpost_mailauth::{DkimSigner, InboundVerifier, KeyDirectory};
use sealpost_testdns::{TestDns, Zone};

use crate::ListenerKind;
use crate::testing::{HOSTNAME, PASSWORD, Running, Setup};

/// DNS for the senders of these tests (the client is 192.0.2.7):
/// remote.test signs and passes, strict.test has p=reject, junk.test p=quarantine,
/// slow.test's policy query is never answered; example.test (ours) publishes its keys.
struct World {
    _dns: TestDns,
    _keys: tempfile::TempDir,
    resolver: Resolver,
    signer: Arc<DkimSigner>,
}

async fn world() -> World {
    let keys = tempfile::tempdir().unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let directory = KeyDirectory::new(keys.path());
    let mut zones = Vec::new();
    for domain in ["remote.test", "example.test"] {
        let (domain_keys, _) = directory.ensure(domain, today).unwrap();
        let mut text = String::from(
            "@ TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n\
             _dmarc TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@remote.test\"\n",
        );
        for key in &domain_keys.keys {
            let record = key.dns_record().unwrap();
            let strings: Vec<String> = record
                .as_bytes()
                .chunks(200)
                .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                .collect();
            text.push_str(&format!(
                "{}._domainkey TXT {}\n",
                key.selector,
                strings.join(" ")
            ));
        }
        zones.push(Zone::parse(domain, &text).unwrap());
    }
    zones.push(Zone::parse("strict.test", "_dmarc TXT \"v=DMARC1; p=reject\"\n").unwrap());
    zones.push(Zone::parse("junk.test", "_dmarc TXT \"v=DMARC1; p=quarantine\"\n").unwrap());
    zones.push(Zone::parse("slow.test", "@ TXT \"v=spf1 -all\"\n").unwrap());
    let mut builder = TestDns::builder().silent("_dmarc.slow.test").unwrap();
    for zone in zones {
        builder = builder.zone(zone);
    }
    let dns = builder.start().await.unwrap();
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(300),
        attempts: 2,
        trust_anchor: None,
    })
    .unwrap();
    let signer = Arc::new(DkimSigner::load(keys.path()).unwrap());
    World {
        _dns: dns,
        _keys: keys,
        resolver,
        signer,
    }
}

impl World {
    fn verifier(&self, enforce: bool) -> Arc<InboundVerifier> {
        Arc::new(InboundVerifier::new(self.resolver.clone(), HOSTNAME).enforce(enforce))
    }

    fn mx(&self, enforce: bool) -> Running {
        let mut setup = Setup::new(ListenerKind::Mx);
        setup.verifier = Some(self.verifier(enforce));
        setup.signer = Some(self.signer.clone());
        setup.start()
    }

    /// `message` with remote.test's DKIM signatures in front.
    fn signed(&self, message: &str) -> Vec<u8> {
        let mut signed = self.signer.sign("remote.test", message.as_bytes()).unwrap();
        signed.extend_from_slice(message.as_bytes());
        signed
    }
}

fn message(from: &str) -> String {
    format!(
        "From: {from}\r\nTo: alice@example.test\r\nSubject: hello\r\n\
         Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@remote.test>\r\n\r\nHi Alice.\r\n"
    )
}

/// MAIL, RCPT alice, DATA with `content`; the reply to the end of data.
async fn send(running: &mut Running, mail_from: &str, content: &[u8]) -> String {
    running
        .client
        .expect(&format!("MAIL FROM:<{mail_from}>"), "250")
        .await;
    running
        .client
        .expect("RCPT TO:<alice@example.test>", "250")
        .await;
    running.client.expect("DATA", "354").await;
    running.client.send(content).await;
    running.client.send(b".\r\n").await;
    running.client.reply().await
}

/// The header field names of a stored message, in order.
fn field_names(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    head.split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

#[tokio::test]
async fn mx_message_gets_our_results_under_received_and_forged_results_are_removed() {
    let world = world().await;
    let mut running = world.mx(true);
    running.greet().await;
    let forged = format!(
        "Authentication-Results: {HOSTNAME}; dmarc=pass header.from=bank.test\r\n{}",
        message("news@remote.test")
    );
    let reply = send(&mut running, "bounce@remote.test", &world.signed(&forged)).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let stored = running.store.only_message();
    let names = field_names(&stored);
    assert_eq!(
        names[..4],
        [
            "Received",
            "Authentication-Results",
            "DKIM-Signature",
            "DKIM-Signature"
        ]
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "Authentication-Results")
            .count(),
        1
    );
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("bank.test"), "{text}");
    assert!(
        text.contains("\tspf=pass smtp.mailfrom=bounce@remote.test;"),
        "{text}"
    );
    assert_eq!(
        text.matches("\tdkim=pass header.d=remote.test").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("\tdmarc=pass (p=reject sp=reject dis=none) header.from=remote.test;"),
        "{text}"
    );
    assert_eq!(running.store.deliveries()[0].local[0].mailbox, "INBOX");

    // Kept for the aggregate report, without holding up the reply (batched, within 1 s).
    let mut evaluations = Vec::new();
    for _ in 0..300 {
        evaluations = running.store.dmarc_evaluations();
        if !evaluations.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(evaluations.len(), 1);
    let evaluation = &evaluations[0];
    assert_eq!(evaluation.header_from, "remote.test");
    assert_eq!(evaluation.envelope_to, "example.test");
    assert_eq!(evaluation.policy_domain, "remote.test");
    assert_eq!(evaluation.rua, vec!["mailto:dmarc@remote.test".to_string()]);
    assert!(evaluation.dkim_aligned && evaluation.spf_aligned);
    assert_eq!(evaluation.source_ip.to_string(), "192.0.2.7");
}

#[tokio::test]
async fn dmarc_reject_is_550_at_the_end_of_data_and_nothing_is_stored() {
    let world = world().await;
    let mut running = world.mx(true);
    running.greet().await;
    let reply = send(
        &mut running,
        "x@elsewhere.test",
        message("ceo@strict.test").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");
    assert!(reply.contains("strict.test"), "{reply}");
    assert!(running.store.deliveries().is_empty());
    // The session goes on.
    let reply = send(
        &mut running,
        "bounce@remote.test",
        &world.signed(&message("a@remote.test")),
    )
    .await;
    assert!(reply.starts_with("250 "), "{reply}");
}

#[tokio::test]
async fn dmarc_quarantine_delivers_to_junk() {
    let world = world().await;
    let mut running = world.mx(true);
    running.greet().await;
    let reply = send(
        &mut running,
        "x@elsewhere.test",
        message("x@junk.test").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let delivery = &running.store.deliveries()[0];
    assert_eq!(delivery.local[0].mailbox, "Junk");
    assert!(String::from_utf8_lossy(&delivery.raw).contains("dmarc=fail (p=quarantine"));
}

#[tokio::test]
async fn unanswered_dns_is_451_never_a_pass() {
    let world = world().await;
    let mut running = world.mx(true);
    running.greet().await;
    let reply = send(
        &mut running,
        "x@slow.test",
        message("x@slow.test").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("451 4.7.1 "), "{reply}");
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn without_enforcement_a_failing_message_is_only_annotated() {
    let world = world().await;
    let mut running = world.mx(false);
    running.greet().await;
    let reply = send(
        &mut running,
        "x@elsewhere.test",
        message("ceo@strict.test").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let delivery = &running.store.deliveries()[0];
    assert_eq!(delivery.local[0].mailbox, "INBOX");
    assert!(
        String::from_utf8_lossy(&delivery.raw)
            .contains("\tdmarc=fail (p=reject sp=reject dis=none) header.from=strict.test")
    );
}

#[tokio::test]
async fn bdat_messages_are_verified_too() {
    let world = world().await;
    let mut running = world.mx(true);
    running.greet().await;
    running
        .client
        .expect("MAIL FROM:<x@elsewhere.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<alice@example.test>", "250")
        .await;
    let content = message("ceo@strict.test");
    running
        .client
        .send(format!("BDAT {} LAST\r\n{content}", content.len()))
        .await;
    let reply = running.client.reply().await;
    assert!(reply.starts_with("550 5.7.1 "), "{reply}");
}

#[tokio::test]
async fn submission_is_signed_not_verified() {
    let world = world().await;
    let mut setup = Setup::new(ListenerKind::Submission);
    setup.verifier = Some(world.verifier(true));
    setup.signer = Some(world.signer.clone());
    let mut running = setup.start();
    running.greet().await;
    running.client.expect("STARTTLS", "220").await;
    running
        .client
        .expect("EHLO client.example.org", "250")
        .await;
    let plain = STANDARD.encode(format!("\0alice@example.test\0{PASSWORD}"));
    running
        .client
        .expect(&format!("AUTH PLAIN {plain}"), "235")
        .await;
    running
        .client
        .expect("MAIL FROM:<alice@example.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<bob@example.test>", "250")
        .await;
    running.client.expect("DATA", "354").await;
    // No Date or Message-ID: they are added first, then signed.
    running
        .client
        .send(b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: signed\r\n\r\nHello Bob.\r\n.\r\n")
        .await;
    assert!(running.client.reply().await.starts_with("250 "));

    let stored = running.store.only_message();
    assert_eq!(
        field_names(&stored)[..5],
        [
            "Received",
            "DKIM-Signature",
            "DKIM-Signature",
            "Date",
            "Message-ID"
        ]
    );
    // What left our hands verifies: both signatures pass for example.test.
    let received_end = stored
        .windows(2)
        .enumerate()
        .skip(1)
        .find(|(i, w)| *w == b"\r\n" && stored[i + 2] != b'\t' && stored[i + 2] != b' ')
        .map(|(i, _)| i + 2)
        .unwrap();
    let verdict = world
        .verifier(true)
        .verify(
            "192.0.2.7".parse().unwrap(),
            "client.example.org",
            "alice@example.test",
            &stored[received_end..],
        )
        .await;
    let dkim: Vec<_> = verdict
        .dkim
        .iter()
        .map(|d| (d.result.as_str(), d.domain.as_str()))
        .collect();
    assert_eq!(
        dkim,
        vec![("pass", "example.test"), ("pass", "example.test")]
    );
}
