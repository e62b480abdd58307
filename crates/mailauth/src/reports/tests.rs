use std::net::IpAddr;

use super::*;

const GZIP: &[u8] = include_bytes!("testdata/report-gzip.eml");
const ZIP: &[u8] = include_bytes!("testdata/report-zip.eml");
const XML: &[u8] = include_bytes!("testdata/report-xml.eml");
const NOT_A_REPORT: &[u8] = include_bytes!("testdata/not-a-report.eml");

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn a_gzipped_rfc9990_report_is_parsed() {
    let report = parse_aggregate_report(GZIP).expect("a report");
    assert_eq!(report.report_metadata.org_name, "receiver.example");
    assert_eq!(report.report_metadata.report_id, "receiver-20261127-0001");
    assert_eq!(report.report_metadata.date_range.begin, 1_795_737_600);
    assert_eq!(report.policy_published.domain, "example.org");
    assert_eq!(report.policy_published.p, Disposition::Quarantine);
    assert_eq!(report.policy_published.np, Disposition::Reject);
    let records = &report.record;
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].row.source_ip, ip("192.0.2.25"));
    assert_eq!(records[0].row.count, 41);
    assert_eq!(
        records[0].row.policy_evaluated.disposition,
        ActionDisposition::Pass
    );
    assert_eq!(records[0].auth_results.dkim.len(), 2);
    assert_eq!(records[2].row.policy_evaluated.dkim, DmarcResult::Fail);
    assert_eq!(records[2].auth_results.spf[0].result, SpfResult::SoftFail);
    assert_eq!(records[3].row.source_ip, ip("2001:db8::bad"));
    assert_eq!(
        records[3].row.policy_evaluated.disposition,
        ActionDisposition::Reject
    );
}

#[test]
fn a_zipped_rfc7489_style_report_is_parsed() {
    let report = parse_aggregate_report(ZIP).expect("a report");
    assert_eq!(report.report_metadata.org_name, "bigmail.example");
    assert_eq!(report.report_metadata.report_id, "17823394562134912307");
    assert_eq!(report.record.len(), 1);
    assert_eq!(report.record[0].row.count, 7);
    assert_eq!(report.record[0].auth_results.dkim[0].selector, "s20261128e");
}

#[test]
fn an_xml_attachment_is_parsed() {
    let report = parse_aggregate_report(XML).expect("a report");
    assert_eq!(report.report_metadata.org_name, "small.example");
    assert_eq!(report.report_metadata.report_id, "plain-1");
}

#[test]
fn other_messages_are_not_reports() {
    assert!(parse_aggregate_report(NOT_A_REPORT).is_none());
    assert!(parse_aggregate_report(b"").is_none());
    assert!(parse_aggregate_report(b"Subject: x\r\n\r\n<feedback>").is_none());
}

#[test]
fn a_report_we_write_parses_back() {
    let original = parse_aggregate_report(GZIP).unwrap();
    let message = aggregate_report_message(
        &original,
        "mail.example.test",
        "dmarc-reports@example.test",
        &["dmarc@example.org".to_string()],
        time::macros::datetime!(2026-11-28 01:00 UTC),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&message).replace("\r\n ", " ");
    assert!(text.contains(
        "Subject: Report Domain: example.org Submitter: mail.example.test Report-ID: \
         <receiver-20261127-0001>"
    ));
    assert!(text.contains("Date: Sat, 28 Nov 2026 01:00:00 +0000"));
    assert!(text.contains("Content-Type: application/gzip;"));
    assert!(text.contains("mail.example.test!example.org!1795737600!1795823999.xml.gz"));
    assert!(!message.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    let parsed = parse_aggregate_report(&message).expect("our own report parses");
    assert_eq!(parsed.record, original.record);
}

#[test]
fn mailto_destinations_with_size_limits_and_other_schemes() {
    let rua = vec![
        "mailto:dmarc@example.org, mailto:Agg%40X@third.example!10m".to_string(),
        "https://reports.example/dmarc".to_string(),
        "mailto:broken".to_string(),
    ];
    assert_eq!(
        mailto_destinations(&rua),
        [
            ReportDestination {
                address: "dmarc@example.org".into(),
                max_size: None,
            },
            ReportDestination {
                address: "agg@x@third.example".into(),
                max_size: Some(10 * 1024 * 1024),
            },
        ]
    );
    assert_eq!(mailto_destinations(&rua)[1].domain(), "third.example");
}

#[test]
fn same_organisation_is_the_domain_its_parents_and_subdomains() {
    assert!(same_organisation("example.org", "example.org"));
    assert!(same_organisation("mail.example.org", "example.org"));
    assert!(same_organisation("example.org", "reports.example.org"));
    assert!(!same_organisation("example.org", "notexample.org"));
    assert!(!same_organisation("example.org", "dmarc.vendor.example"));
}
