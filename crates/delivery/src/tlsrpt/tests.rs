use std::net::IpAddr;
use std::time::Duration;

use mail_auth::report::tlsrpt::{PolicyType, ResultType, TlsReport};
use sealpost_dns::ResolverSettings;
use sealpost_mailauth::KeyDirectory;
use sealpost_store::EmbeddedStore;
use sealpost_testdns::{TestDns, Zone};
use serde_json::Value;

use super::*;

/// 2026-05-02 12:00 UTC; "yesterday" starts at 2026-05-01 00:00.
const NOW: i64 = 1_777_723_200;
const YESTERDAY: i64 = 1_777_593_600;

const STS_LINES: [&str; 4] = [
    "version: STSv1",
    "mode: testing",
    "mx: *.mail.company-y.example",
    "max_age: 86400",
];

fn sts_result(mx: &str, ip: &str, failure: Option<(&str, &str)>) -> TlsSessionResult {
    TlsSessionResult {
        at: YESTERDAY + 3600,
        policy_domain: "company-y.example".into(),
        policy_type: "sts".into(),
        policy_strings: STS_LINES.iter().map(|s| s.to_string()).collect(),
        mx_host: mx.into(),
        receiving_ip: Some(ip.parse().unwrap()),
        result_type: failure.map(|(t, _)| t.to_string()),
        failure_detail: failure.map(|(_, d)| d.to_string()),
    }
}

/// The sessions of RFC 8460's example report (§4.8), scaled down: 5 successes, 3
/// expired certificates at mx1, 2 MXes without STARTTLS at mx2.
fn rfc_example_results() -> Vec<TlsSessionResult> {
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(sts_result(
            "mx1.mail.company-y.example",
            "203.0.113.55",
            None,
        ));
    }
    for _ in 0..3 {
        results.push(sts_result(
            "mx1.mail.company-y.example",
            "203.0.113.55",
            Some(("certificate-expired", "pkix: certificate expired")),
        ));
    }
    for _ in 0..2 {
        results.push(sts_result(
            "mx2.mail.company-y.example",
            "203.0.113.56",
            Some(("starttls-not-supported", "the MX did not offer STARTTLS")),
        ));
    }
    results
}

fn example_report(results: &[TlsSessionResult]) -> (String, u64, u64) {
    json::Report {
        organization_name: "company-x.example",
        contact_info: "tls-reports@company-x.example",
        report_id: "2026-05-01.company-y.example.mail.company-x.example",
        begin: YESTERDAY,
        end: YESTERDAY + DAY - 1,
        domain: "company-y.example",
        results,
    }
    .to_json()
}

#[test]
fn report_json_has_the_shape_of_the_rfc_8460_example() {
    let results = rfc_example_results();
    let (text, successes, failures) = example_report(&results);
    assert_eq!((successes, failures), (5, 5));
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["organization-name"], "company-x.example");
    assert_eq!(
        document["date-range"]["start-datetime"],
        "2026-05-01T00:00:00Z"
    );
    assert_eq!(
        document["date-range"]["end-datetime"],
        "2026-05-01T23:59:59Z"
    );
    assert_eq!(document["contact-info"], "tls-reports@company-x.example");
    let policies = document["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    let policy = &policies[0];
    assert_eq!(policy["policy"]["policy-type"], "sts");
    assert_eq!(
        policy["policy"]["policy-string"],
        serde_json::json!(STS_LINES)
    );
    assert_eq!(policy["policy"]["policy-domain"], "company-y.example");
    assert_eq!(
        policy["policy"]["mx-host"],
        serde_json::json!(["*.mail.company-y.example"])
    );
    assert_eq!(policy["summary"]["total-successful-session-count"], 5);
    assert_eq!(policy["summary"]["total-failure-session-count"], 5);
    let details = policy["failure-details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["result-type"], "certificate-expired");
    assert_eq!(
        details[0]["receiving-mx-hostname"],
        "mx1.mail.company-y.example"
    );
    assert_eq!(details[0]["receiving-ip"], "203.0.113.55");
    assert_eq!(details[0]["failed-session-count"], 3);
    assert_eq!(
        details[0]["failure-reason-code"],
        "pkix: certificate expired"
    );
    assert_eq!(details[1]["result-type"], "starttls-not-supported");
    assert_eq!(details[1]["failed-session-count"], 2);
    // No nulls: absent fields are left out.
    assert!(!text.contains("null"));

    // An independent reader (mail-auth's TLS-RPT types) understands it.
    let parsed: TlsReport = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed.policies[0].policy.policy_type, PolicyType::Sts);
    assert_eq!(parsed.policies[0].summary.total_success, 5);
    assert_eq!(
        parsed.policies[0].failure_details[0].result_type,
        ResultType::CertificateExpired
    );
}

#[test]
fn policies_are_kept_apart_and_no_policy_found_has_no_policy_string() {
    let mut results = rfc_example_results();
    results.push(TlsSessionResult {
        at: YESTERDAY,
        policy_domain: "company-y.example".into(),
        policy_type: "no-policy-found".into(),
        policy_strings: Vec::new(),
        mx_host: "old.company-y.example".into(),
        receiving_ip: None,
        result_type: None,
        failure_detail: None,
    });
    let (text, successes, failures) = example_report(&results);
    assert_eq!((successes, failures), (6, 5));
    let document: Value = serde_json::from_str(&text).unwrap();
    let policies = document["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    let none = policies
        .iter()
        .find(|p| p["policy"]["policy-type"] == "no-policy-found")
        .unwrap();
    assert!(none["policy"].get("policy-string").is_none());
    assert_eq!(
        none["policy"]["mx-host"],
        serde_json::json!(["old.company-y.example"])
    );
    assert!(none.get("failure-details").is_none());
}

#[test]
fn report_message_is_a_multipart_report_with_a_gzipped_json_attachment() {
    let results = rfc_example_results();
    let (json, _, _) = example_report(&results);
    let to = vec!["tlsrpt@company-y.example".to_string()];
    let raw = message::write(&message::ReportMessage {
        json: json.as_bytes(),
        domain: "company-y.example",
        submitter: "mail.company-x.example",
        report_id: "2026-05-01.company-y.example.mail.company-x.example",
        begin: YESTERDAY,
        end: YESTERDAY + DAY - 1,
        from: "tls-reports@company-x.example",
        to: &to,
        date: OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
    })
    .unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    let head = &text[..text.find("\r\n\r\n").unwrap()];
    assert!(head.contains("\r\nTLS-Required: No\r\n"));
    assert!(head.contains("\r\nTLS-Report-Domain: company-y.example\r\n"));
    assert!(head.contains("\r\nTLS-Report-Submitter: mail.company-x.example\r\n"));
    assert!(head.contains("Content-Type: multipart/report; report-type=\"tlsrpt\""));
    assert!(head.contains(
        "Subject: Report Domain: company-y.example Submitter: mail.company-x.example\r\n Report-ID: <2026-05-01.company-y.example.mail.company-x.example>"
    ));
    assert!(text.contains("Content-Type: application/tlsrpt+gzip"));
    assert!(text.contains(&format!(
        "filename=\"mail.company-x.example!company-y.example!{YESTERDAY}!{}!2026-05-01.company-y.example.mail.company-x.example.json.gz\"",
        YESTERDAY + DAY - 1
    )));
    assert!(text.lines().all(|line| line.len() <= 998));

    // mail-auth's report reader finds the attachment, gunzips it and reads the JSON.
    let parsed = TlsReport::parse_rfc5322(&raw, 1 << 20).unwrap();
    assert_eq!(parsed.policies[0].summary.total_failure, 5);
    assert_eq!(parsed.policies[0].policy.policy_domain, "company-y.example");
}

const ZONE: &str = r#"
_smtp._tls.a     TXT "v=TLSRPTv1; rua=mailto:tlsrpt@a.example.test,https://reports.example/v1"
_smtp._tls.web   TXT "v=TLSRPTv1; rua=https://reports.example/v1"
_smtp._tls.two   TXT "v=TLSRPTv1; rua=mailto:one@two.example.test"
_smtp._tls.two   TXT "v=TLSRPTv1; rua=mailto:two@two.example.test"
_smtp._tls.bad   TXT "v=spf1 -all"
_smtp._tls.inject TXT "v=TLSRPTv1; rua=mailto:a@inject.example.test=0D=0ABcc:=20victim@elsewhere.test,mailto:ok@inject.example.test"
_smtp._tls.many  TXT "v=TLSRPTv1; rua=mailto:1@x.test,mailto:2@x.test,mailto:2@x.test,mailto:3@x.test,mailto:4@x.test,mailto:5@x.test,mailto:6@x.test,mailto:7@x.test"
"#;

struct Setup {
    _dns: TestDns,
    dir: tempfile::TempDir,
    store: EmbeddedStore,
    resolver: Resolver,
}

async fn setup() -> Setup {
    let dns = TestDns::builder()
        .zone(Zone::parse("example.test", ZONE).unwrap())
        .start()
        .await
        .unwrap();
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(500),
        attempts: 1,
        trust_anchor: None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.add_domain("sender.test").await.unwrap();
    Setup {
        _dns: dns,
        dir,
        store,
        resolver,
    }
}

fn result_for(domain: &str, at: i64, failure: Option<&str>) -> TlsSessionResult {
    TlsSessionResult {
        at,
        policy_domain: domain.into(),
        policy_type: "no-policy-found".into(),
        policy_strings: Vec::new(),
        mx_host: format!("mx.{domain}"),
        receiving_ip: Some("127.0.0.1".parse::<IpAddr>().unwrap()),
        result_type: failure.map(str::to_string),
        failure_detail: failure.map(|_| "why".to_string()),
    }
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        hostname: "mail.sender.test".into(),
        ..DeliverySettings::default()
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

#[tokio::test]
async fn destinations_are_the_mailto_uris_of_exactly_one_record() {
    let setup = setup().await;
    let resolver = &setup.resolver;
    assert_eq!(
        report_destinations(resolver, "a.example.test")
            .await
            .unwrap(),
        Some(vec!["tlsrpt@a.example.test".to_string()])
    );
    assert_eq!(
        report_destinations(resolver, "web.example.test")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        report_destinations(resolver, "two.example.test")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        report_destinations(resolver, "bad.example.test")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        report_destinations(resolver, "none.example.test")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_destination_that_could_break_the_report_header_is_skipped() {
    let setup = setup().await;
    // `=0D=0A` decodes to CR LF: it must never reach the To: field or the envelope.
    assert_eq!(
        report_destinations(&setup.resolver, "inject.example.test")
            .await
            .unwrap(),
        Some(vec!["ok@inject.example.test".to_string()])
    );
}

#[tokio::test]
async fn destinations_are_deduplicated_and_bounded() {
    let setup = setup().await;
    let destinations = report_destinations(&setup.resolver, "many.example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        destinations,
        ["1@x.test", "2@x.test", "3@x.test", "4@x.test", "5@x.test"]
    );
}

#[tokio::test]
async fn yesterdays_sessions_become_one_signed_report_per_domain_that_asks_once() {
    let setup = setup().await;
    KeyDirectory::new(setup.dir.path())
        .ensure("sender.test", time::macros::date!(2026 - 05 - 01))
        .unwrap();
    let signer = DkimSigner::load(setup.dir.path()).unwrap();
    setup
        .store
        .record_tls_results(vec![
            result_for("a.example.test", YESTERDAY + 10, None),
            result_for(
                "a.example.test",
                YESTERDAY + 20,
                Some("starttls-not-supported"),
            ),
            // No TLS-RPT record: no report.
            result_for("bad.example.test", YESTERDAY + 30, None),
            // Today is not complete yet.
            result_for("a.example.test", NOW - 60, None),
            // Older than the retention: forgotten.
            result_for("a.example.test", YESTERDAY - 30 * DAY, None),
        ])
        .await
        .unwrap();

    let sent = send_reports(
        &setup.store,
        &setup.resolver,
        Some(&signer),
        &settings(),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(sent.len(), 1);
    let report = &sent[0];
    assert_eq!(report.policy_domain, "a.example.test");
    assert_eq!(report.begin, YESTERDAY);
    assert_eq!((report.successful_sessions, report.failed_sessions), (1, 1));
    assert_eq!(report.recipients, ["tlsrpt@a.example.test"]);
    assert_eq!(
        report.report_id,
        "2026-05-01.a.example.test.mail.sender.test"
    );

    let entries = setup.store.queue_entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].sender, "tls-reports@sender.test");
    assert_eq!(entries[0].recipients[0].address, "tlsrpt@a.example.test");
    let raw = setup
        .store
        .queue_message(entries[0].id)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("DKIM-Signature:"), "{}", &text[..200]);
    assert!(text.contains("d=sender.test"));
    assert!(text.contains("\r\nTLS-Required: No\r\n"));
    let parsed = TlsReport::parse_rfc5322(&raw, 1 << 20).unwrap();
    assert_eq!(parsed.policies[0].summary.total_success, 1);
    assert_eq!(parsed.policies[0].summary.total_failure, 1);

    // Again: nothing new is queued, and the old results are gone.
    let again = send_reports(
        &setup.store,
        &setup.resolver,
        Some(&signer),
        &settings(),
        now(),
    )
    .await
    .unwrap();
    assert!(again.is_empty());
    assert_eq!(setup.store.queue_entries().await.unwrap().len(), 1);
    let kept = setup.store.tls_results(0, i64::MAX).await.unwrap();
    assert_eq!(kept.len(), 4);
}

#[tokio::test]
async fn reports_are_off_when_the_settings_say_so() {
    let setup = setup().await;
    setup
        .store
        .record_tls_results(vec![result_for("a.example.test", YESTERDAY + 10, None)])
        .await
        .unwrap();
    let off = DeliverySettings {
        tls_reports: false,
        ..settings()
    };
    let sent = send_reports(&setup.store, &setup.resolver, None, &off, now())
        .await
        .unwrap();
    assert!(sent.is_empty());
    assert!(setup.store.queue_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unsigned_report_goes_out_when_there_is_no_signer() {
    let setup = setup().await;
    setup
        .store
        .record_tls_results(vec![result_for("a.example.test", YESTERDAY + 10, None)])
        .await
        .unwrap();
    let sent = send_reports(&setup.store, &setup.resolver, None, &settings(), now())
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let entries = setup.store.queue_entries().await.unwrap();
    let raw = setup
        .store
        .queue_message(entries[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(raw.starts_with(b"From: <tls-reports@sender.test>"));
}
