//! The message that carries a report (RFC 8460 §5.3): `multipart/report` with
//! `report-type="tlsrpt"`, a short text part and the gzipped JSON as an
//! `application/tlsrpt+gzip` attachment named
//! `submitter!policy-domain!begin!end!report-id.json.gz`; header fields
//! `TLS-Report-Domain`, `TLS-Report-Submitter` and `TLS-Required: No` (a report about
//! broken TLS must still reach the domain, RFC 8460 §5.1 and RFC 8689 §5). Lines end in
//! CRLF.

use sealpost_mailauth::reports::{ReportMail, report_digest, write_report_mail};
use time::OffsetDateTime;

pub(super) struct ReportMessage<'a> {
    pub json: &'a [u8],
    pub domain: &'a str,
    /// Our host name.
    pub submitter: &'a str,
    pub report_id: &'a str,
    pub begin: i64,
    pub end: i64,
    pub from: &'a str,
    pub to: &'a [String],
    pub date: OffsetDateTime,
}

pub(super) fn write(report: &ReportMessage<'_>) -> std::io::Result<Vec<u8>> {
    let ReportMessage {
        domain,
        submitter,
        report_id,
        ..
    } = *report;
    // The unique-id part keeps two reports of one day apart; "!" and "/" would split it.
    let unique: String = report_id
        .chars()
        .map(|c| if c == '!' || c == '/' { '_' } else { c })
        .collect();
    let file_name = format!(
        "{submitter}!{domain}!{}!{}!{unique}.json.gz",
        report.begin, report.end
    );
    let digest = report_digest(format!("{domain}\0{report_id}").as_bytes());
    write_report_mail(&ReportMail {
        from: report.from,
        to: report.to,
        date: report.date,
        domain,
        submitter,
        report_id,
        message_id: &format!("<tlsrpt.{digest}@{submitter}>"),
        boundary: &format!("=_tlsrpt_{digest}"),
        extra_headers: &[
            ("TLS-Report-Domain", domain),
            ("TLS-Report-Submitter", submitter),
            ("TLS-Required", "No"),
        ],
        content_type: "multipart/report; report-type=\"tlsrpt\"",
        title: "SMTP TLS report (RFC 8460)",
        attachment_type: "application/tlsrpt+gzip",
        file_name: &file_name,
        report: report.json,
    })
}
