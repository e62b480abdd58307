//! The message that carries a report (RFC 8460 §5.3): `multipart/report` with
//! `report-type="tlsrpt"`, a short text part and the gzipped JSON as an
//! `application/tlsrpt+gzip` attachment named
//! `submitter!policy-domain!begin!end!report-id.json.gz`; header fields
//! `TLS-Report-Domain`, `TLS-Report-Submitter` and `TLS-Required: No` (a report about
//! broken TLS must still reach the domain, RFC 8460 §5.1 and RFC 8689 §5). Lines end in
//! CRLF.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::flate2::Compression;
use mail_auth::flate2::write::GzEncoder;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

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
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(report.json)?;
    let attachment = BASE64.encode(gzip.finish()?);
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
    let date = report
        .date
        .format(&Rfc2822)
        .map_err(std::io::Error::other)?;
    let digest = hex_digest(format!("{domain}\0{report_id}").as_bytes());
    let boundary = format!("=_tlsrpt_{digest}");
    let message_id = format!("<tlsrpt.{digest}@{submitter}>");

    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", &format!("<{}>", report.from));
    header(
        "To",
        &report
            .to
            .iter()
            .map(|address| format!("<{address}>"))
            .collect::<Vec<_>>()
            .join(",\r\n "),
    );
    header("Date", &date);
    header("Message-ID", &message_id);
    // Folded before "Report-ID:"; unfolding gives back the single-line form of §5.3.
    header(
        "Subject",
        &format!("Report Domain: {domain} Submitter: {submitter}\r\n Report-ID: <{report_id}>"),
    );
    header("TLS-Report-Domain", domain);
    header("TLS-Report-Submitter", submitter);
    header("TLS-Required", "No");
    header("Auto-Submitted", "auto-generated");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"{boundary}\""),
    );
    out.push_str("\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    out.push_str(&format!(
        "SMTP TLS report (RFC 8460) from {submitter}\r\n\r\n\
         Report Domain: {domain}\r\nSubmitter: {submitter}\r\nReport-ID: {report_id}\r\n\r\n"
    ));
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str(&format!(
        "Content-Type: application/tlsrpt+gzip;\r\n name=\"{file_name}\"\r\n\
         Content-Disposition: attachment;\r\n filename=\"{file_name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    for line in attachment.as_bytes().chunks(76) {
        // Base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out.into_bytes())
}

fn hex_digest(data: &[u8]) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    hash.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
