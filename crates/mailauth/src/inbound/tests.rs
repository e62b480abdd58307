//! The whole verdict: DMARC over SPF and DKIM, the Authentication-Results header and the
//! action, against a real DNS server on loopback.

use super::*;
use crate::inbound::testing::{TestKey, dns};

const PEER: &str = "192.0.2.1";

/// example.test: SPF allows 192.0.2.0/24, a key for DKIM, p=reject with reports;
/// quarantine.test: p=quarantine; none.test: p=none; testing.test: p=reject t=y;
/// org.test: p=none, sp=quarantine, np=reject, with one existing subdomain.
fn zones(key: &TestKey) -> Vec<(&'static str, String)> {
    vec![
        (
            "example.test",
            format!(
                "@ TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n\
                 sel._domainkey TXT {}\n\
                 _dmarc TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@example.test\"\n\
                 sub TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n",
                key.record()
            ),
        ),
        (
            "quarantine.test",
            "@ TXT \"v=spf1 -all\"\n_dmarc TXT \"v=DMARC1; p=quarantine\"\n".into(),
        ),
        (
            "none.test",
            "@ TXT \"v=spf1 -all\"\n_dmarc TXT \"v=DMARC1; p=none\"\n".into(),
        ),
        (
            "testing.test",
            "@ TXT \"v=spf1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject; t=y\"\n".into(),
        ),
        (
            "org.test",
            "@ TXT \"v=spf1 -all\"\n\
             _dmarc TXT \"v=DMARC1; p=none; sp=quarantine; np=reject\"\n\
             real A 192.0.2.99\n"
                .into(),
        ),
        ("slow.test", "@ TXT \"v=spf1 -all\"\n".into()),
    ]
}

struct Case {
    key: TestKey,
    enforce: bool,
    silent: Vec<&'static str>,
}

impl Case {
    fn new() -> Self {
        Self {
            key: TestKey::ed25519(),
            enforce: true,
            silent: Vec::new(),
        }
    }

    async fn verify(&self, mail_from: &str, message: &[u8]) -> InboundVerdict {
        let zones = zones(&self.key);
        let zones: Vec<(&str, &str)> = zones.iter().map(|(o, t)| (*o, t.as_str())).collect();
        let (_dns, resolver) = dns(&zones, &self.silent).await;
        InboundVerifier::new(resolver, "mx.sealpost.test")
            .enforce(self.enforce)
            .verify(
                PEER.parse().unwrap(),
                "client.example.test",
                mail_from,
                message,
            )
            .await
    }
}

fn message(from: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: bob@sealpost.test\r\nSubject: hello\r\n\r\nHi Bob.\r\n")
        .into_bytes()
}

fn dmarc_line(verdict: &InboundVerdict) -> &str {
    verdict
        .header
        .split(";\r\n\t")
        .find(|line| line.starts_with("dmarc="))
        .unwrap_or("")
}

#[tokio::test]
async fn aligned_dkim_passes_dmarc_even_when_spf_fails() {
    let case = Case::new();
    let signed = case
        .key
        .sign("example.test", "sel", &message("alice@example.test"));
    let verdict = case.verify("bounce@elsewhere.test", &signed).await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    assert!(
        dmarc_line(&verdict).starts_with("dmarc=pass (p=reject sp=reject dis=none)"),
        "{}",
        verdict.header
    );
    let outcome = verdict.dmarc.unwrap();
    assert_eq!(outcome.result, DmarcResult::Pass);
    assert!(outcome.dkim_aligned && !outcome.spf_aligned);
    assert_eq!(outcome.policy.rua, vec!["dmarc@example.test".to_string()]);
    assert_eq!(outcome.policy.domain, "example.test");
    assert_eq!(outcome.header_from, "example.test");
    assert_eq!(outcome.source_ip, PEER.parse::<IpAddr>().unwrap());
}

#[tokio::test]
async fn aligned_spf_passes_dmarc_including_a_subdomain_under_relaxed_alignment() {
    let case = Case::new();
    let verdict = case
        .verify("bounce@sub.example.test", &message("alice@example.test"))
        .await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    let outcome = verdict.dmarc.unwrap();
    assert_eq!(outcome.result, DmarcResult::Pass);
    assert!(outcome.spf_aligned);
    assert_eq!(outcome.envelope_from, "sub.example.test");
}

#[tokio::test]
async fn header_has_our_authserv_id_and_every_method() {
    let case = Case::new();
    let signed = case
        .key
        .sign("example.test", "sel", &message("alice@example.test"));
    let verdict = case.verify("alice@example.test", &signed).await;
    let lines: Vec<&str> = verdict.header.split(";\r\n\t").collect();
    assert_eq!(lines[0], "Authentication-Results: mx.sealpost.test");
    assert_eq!(lines[1], "spf=pass smtp.mailfrom=alice@example.test");
    assert_eq!(lines[2], "spf=none smtp.helo=client.example.test");
    assert!(
        lines[3].starts_with(
            "dkim=pass header.d=example.test header.s=sel header.a=ed25519-sha256 header.b="
        ),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        "dmarc=pass (p=reject sp=reject dis=none) header.from=example.test"
    );
    assert_eq!(lines[5], "arc=none smtp.remote-ip=192.0.2.1\r\n");
    assert!(verdict.header.ends_with("\r\n"));
}

#[tokio::test]
async fn dmarc_fail_under_p_reject_is_rejected() {
    let verdict = Case::new()
        .verify("alice@elsewhere.test", &message("ceo@example.test"))
        .await;
    assert!(
        matches!(&verdict.action, PolicyAction::Reject(reason) if reason.contains("example.test")),
        "{:?}",
        verdict.action
    );
    assert!(dmarc_line(&verdict).starts_with("dmarc=fail (p=reject sp=reject dis=reject)"));
    assert_eq!(verdict.dmarc.unwrap().disposition, DmarcPolicy::Reject);
}

#[tokio::test]
async fn dmarc_fail_under_p_quarantine_goes_to_junk_and_under_p_none_is_accepted() {
    let case = Case::new();
    let verdict = case
        .verify("x@quarantine.test", &message("x@quarantine.test"))
        .await;
    assert_eq!(verdict.action, PolicyAction::Quarantine);
    let verdict = case.verify("x@none.test", &message("x@none.test")).await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    assert!(dmarc_line(&verdict).starts_with("dmarc=fail (p=none"));
}

#[tokio::test]
async fn testing_mode_applies_one_level_less() {
    let verdict = Case::new()
        .verify("x@testing.test", &message("x@testing.test"))
        .await;
    assert_eq!(verdict.action, PolicyAction::Quarantine);
    assert!(dmarc_line(&verdict).contains("t=y"), "{}", verdict.header);
}

#[tokio::test]
async fn np_applies_to_a_non_existent_subdomain_and_sp_to_an_existing_one() {
    let case = Case::new();
    let verdict = case
        .verify("x@org.test", &message("x@ghost.org.test"))
        .await;
    assert!(
        matches!(verdict.action, PolicyAction::Reject(_)),
        "{:?}",
        verdict.action
    );
    let verdict = case.verify("x@org.test", &message("x@real.org.test")).await;
    assert_eq!(verdict.action, PolicyAction::Quarantine);
    let verdict = case.verify("x@org.test", &message("x@org.test")).await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    assert_eq!(verdict.dmarc.unwrap().policy.domain, "org.test");
}

#[tokio::test]
async fn unanswered_dmarc_query_is_a_temporary_failure_never_a_pass() {
    let mut case = Case::new();
    case.silent = vec!["_dmarc.slow.test"];
    let verdict = case.verify("x@slow.test", &message("x@slow.test")).await;
    assert!(
        matches!(verdict.action, PolicyAction::TempFail(_)),
        "{:?}",
        verdict.action
    );
    assert!(
        dmarc_line(&verdict).starts_with("dmarc=temperror"),
        "{}",
        verdict.header
    );
    assert!(verdict.dmarc.is_none());
}

#[tokio::test]
async fn without_enforcement_the_verdict_is_only_annotated() {
    let mut case = Case::new();
    case.enforce = false;
    let verdict = case
        .verify("alice@elsewhere.test", &message("ceo@example.test"))
        .await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    assert!(dmarc_line(&verdict).starts_with("dmarc=fail (p=reject sp=reject dis=none)"));
    assert_eq!(verdict.dmarc.unwrap().disposition, DmarcPolicy::None);
}

#[tokio::test]
async fn message_without_from_is_permerror_without_policy() {
    let verdict = Case::new()
        .verify(
            "alice@example.test",
            b"To: bob@sealpost.test\r\nSubject: who?\r\n\r\nbody\r\n",
        )
        .await;
    assert_eq!(verdict.action, PolicyAction::Accept);
    assert!(dmarc_line(&verdict).starts_with("dmarc=permerror (no RFC5322.From domain)"));
    assert!(verdict.dmarc.is_none());
}

#[tokio::test]
async fn several_from_domains_are_each_evaluated_and_the_strictest_wins() {
    let case = Case::new();
    let two_fields = b"From: x@none.test\r\nFrom: ceo@example.test\r\nSubject: s\r\n\r\nb\r\n";
    let verdict = case.verify("x@none.test", two_fields).await;
    assert!(
        matches!(verdict.action, PolicyAction::Reject(_)),
        "{:?}",
        verdict.action
    );
    assert_eq!(
        verdict.header.matches("dmarc=").count(),
        2,
        "{}",
        verdict.header
    );
    assert_eq!(verdict.dmarc.unwrap().header_from, "example.test");

    let one_field = b"From: x@none.test, ceo@quarantine.test\r\nSubject: s\r\n\r\nb\r\n";
    let verdict = case.verify("x@none.test", one_field).await;
    assert_eq!(verdict.action, PolicyAction::Quarantine);
}

#[tokio::test]
async fn our_own_results_are_removed_others_kept() {
    let (_dns, resolver) = dns(&[], &[]).await;
    let verifier = InboundVerifier::new(resolver, "mx.sealpost.test");
    let message = b"Authentication-Results: mx.sealpost.test; dmarc=pass\r\n\
Authentication-Results: relay.example.test; spf=pass\r\nSubject: s\r\n\r\nb\r\n";
    assert_eq!(
        &*verifier.remove_forged_results(message),
        &b"Authentication-Results: relay.example.test; spf=pass\r\nSubject: s\r\n\r\nb\r\n"[..]
    );
}
