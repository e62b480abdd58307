use std::net::IpAddr;

use sealpost_mailauth::KeyDirectory;
use sealpost_store::{EmbeddedStore, LocalTarget};

use super::*;

const GZIP: &[u8] = include_bytes!("../../../mailauth/src/reports/testdata/report-gzip.eml");
const ZIP: &[u8] = include_bytes!("../../../mailauth/src/reports/testdata/report-zip.eml");
const NOT_A_REPORT: &[u8] =
    include_bytes!("../../../mailauth/src/reports/testdata/not-a-report.eml");

/// 2026-11-28 10:00 UTC.
const NOW: i64 = 1_795_860_000;
const TODAY: i64 = 1_795_824_000;

fn evaluation(at: i64, ip: &str, domain: &str, rua: &str) -> DmarcEvaluationRecord {
    DmarcEvaluationRecord {
        evaluated_at: at,
        source_ip: ip.parse::<IpAddr>().unwrap(),
        header_from: domain.into(),
        envelope_from: domain.into(),
        envelope_to: "example.test".into(),
        policy_domain: domain.into(),
        policy: DmarcPolicyPublished {
            p: DmarcDisposition::Reject,
            sp: None,
            np: None,
            adkim_strict: false,
            aspf_strict: false,
            testing: false,
            fo: None,
        },
        disposition: DmarcDisposition::None,
        dkim_aligned: true,
        spf_aligned: true,
        dkim: vec![DkimAuthResult {
            domain: domain.into(),
            selector: "sel".into(),
            result: "pass".into(),
        }],
        spf: Some(SpfAuthResult {
            domain: domain.into(),
            scope: "mfrom".into(),
            result: "pass".into(),
        }),
        rua: vec![rua.into()],
    }
}

async fn setup() -> (tempfile::TempDir, EmbeddedStore, DkimSigner) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    KeyDirectory::new(dir.path())
        .ensure("example.test", time::macros::date!(2026 - 11 - 01))
        .unwrap();
    let signer = DkimSigner::load(dir.path()).unwrap();
    (dir, store, signer)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap()
}

#[tokio::test]
async fn one_signed_report_per_domain_and_complete_day_is_queued_once() {
    let (_dir, store, signer) = setup().await;
    let yesterday = TODAY - DAY + 3600;
    for (at, ip) in [
        (yesterday, "192.0.2.1"),
        (yesterday + 60, "192.0.2.1"),
        (yesterday + 120, "198.51.100.9"),
        (NOW - 60, "192.0.2.1"),
    ] {
        store
            .record_dmarc_evaluation(evaluation(
                at,
                ip,
                "example.net",
                "mailto:dmarc@example.net",
            ))
            .await
            .unwrap();
    }
    // An external destination without a resolver to verify it gets nothing.
    store
        .record_dmarc_evaluation(evaluation(
            yesterday,
            "192.0.2.1",
            "other.example",
            "mailto:agg@vendor.example",
        ))
        .await
        .unwrap();
    // Older than the retention window: neither reported nor kept.
    store
        .record_dmarc_evaluation(evaluation(
            TODAY - 9 * DAY,
            "192.0.2.1",
            "example.net",
            "mailto:dmarc@example.net",
        ))
        .await
        .unwrap();

    let sent = send_reports_at(&store, "mail.example.test", &signer, None, now())
        .await
        .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].policy_domain, "example.net");
    assert_eq!(sent[0].messages, 3);
    assert_eq!(sent[0].recipients, ["dmarc@example.net"]);
    assert_eq!(
        sent[0].report_id,
        "example.net.2026-11-27.mail.example.test"
    );

    let queue = store.queue_entries().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].sender, "dmarc-reports@example.test");
    let message = store.queue_message(queue[0].id).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&message);
    assert!(text.starts_with("DKIM-Signature: v=1; a=rsa-sha256; s="));
    assert!(text.contains("d=example.test"));
    let report = reports::parse_aggregate_report(&message).expect("the report parses");
    assert_eq!(report.report_metadata.org_name, "mail.example.test");
    assert_eq!(
        report.report_metadata.date_range.begin,
        (TODAY - DAY) as u64
    );
    assert_eq!(report.report_metadata.date_range.end, (TODAY - 1) as u64);
    assert_eq!(report.policy_published.p, Disposition::Reject);
    let counts: Vec<(Option<IpAddr>, u32)> = report
        .record
        .iter()
        .map(|r| (r.row.source_ip, r.row.count))
        .collect();
    assert_eq!(
        counts,
        [
            (Some("192.0.2.1".parse().unwrap()), 2),
            (Some("198.51.100.9".parse().unwrap()), 1)
        ]
    );
    assert_eq!(
        report.record[0].row.policy_evaluated.disposition,
        ActionDisposition::Pass
    );

    let again = send_reports_at(&store, "mail.example.test", &signer, None, now())
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(store.queue_entries().await.unwrap().len(), 1);
    let kept = store.dmarc_evaluations(0, i64::MAX).await.unwrap();
    assert!(kept.iter().all(|e| e.evaluated_at >= TODAY - 7 * DAY));
}

#[tokio::test]
async fn a_report_larger_than_the_rua_limit_is_not_sent() {
    let (_dir, store, signer) = setup().await;
    store
        .record_dmarc_evaluation(evaluation(
            TODAY - 100,
            "192.0.2.1",
            "example.net",
            "mailto:dmarc@example.net!1k",
        ))
        .await
        .unwrap();
    let sent = send_reports_at(&store, "mail.example.test", &signer, None, now())
        .await
        .unwrap();
    assert!(sent.is_empty());
    assert!(store.queue_entries().await.unwrap().is_empty());
}

async fn deliver_to_inbox(store: &EmbeddedStore, address: &str, raw: &[u8]) {
    let account = store.account(address).await.unwrap().unwrap();
    store
        .deliver(Delivery {
            raw: Arc::new(raw.to_vec()),
            internal_date: NOW,
            local: vec![LocalTarget {
                account: account.id,
                mailbox: "INBOX".into(),
            }],
            outbound: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn import_stores_each_report_once_and_reads_each_message_once() {
    let (_dir, store, _) = setup().await;
    let address = "dmarc-reports@example.org".to_string();
    store.create_account(&address, "x").await.unwrap();
    for raw in [GZIP, ZIP, NOT_A_REPORT] {
        deliver_to_inbox(&store, &address, raw).await;
    }
    let mailboxes = vec![address.clone(), "nobody@example.org".to_string()];
    let first = import_reports(&store, &mailboxes).await.unwrap();
    assert_eq!(
        first,
        Imported {
            scanned: 3,
            imported: 2,
            duplicates: 0,
            not_reports: 1
        }
    );
    assert_eq!(
        import_reports(&store, &mailboxes).await.unwrap(),
        Imported::default()
    );
    deliver_to_inbox(&store, &address, GZIP).await;
    let again = import_reports(&store, &mailboxes).await.unwrap();
    assert_eq!((again.scanned, again.duplicates), (1, 1));
    assert_eq!(store.dmarc_reports("example.org").await.unwrap().len(), 2);
}

#[test]
fn the_summary_counts_sources_alignment_and_dispositions() {
    let stored: Vec<DmarcAggregateReport> = [GZIP, ZIP]
        .iter()
        .map(|raw| stored_report(&reports::parse_aggregate_report(raw).unwrap()))
        .collect();
    let summary = summarise("example.org", &stored);
    for line in [
        "period: 2026-11-26 to 2026-11-27 (2 reports from 2 organisations)",
        "messages: 57",
        "dmarc pass: 51 (89.5%)",
        "dkim aligned pass: 51",
        "spf aligned pass: 48",
        "disposition: none 51, quarantine 5, reject 1",
        "  example.org s20261128r pass: 44",
        "  spoofer.example mfrom softfail: 5",
        "  bigmail.example: 1 reports, 7 messages",
        "  receiver.example: 1 reports, 50 messages",
    ] {
        assert!(summary.contains(line), "missing {line:?} in\n{summary}");
    }
    let source = summary
        .lines()
        .find(|l| l.starts_with("192.0.2.25 "))
        .unwrap();
    let columns: Vec<&str> = source.split_whitespace().collect();
    assert_eq!(
        columns,
        ["192.0.2.25", "48", "48", "48", "0", "0", "example.org"]
    );
    assert!(summarise("example.org", &[]).starts_with("no DMARC aggregate reports"));
}
