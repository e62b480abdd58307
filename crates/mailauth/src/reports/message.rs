//! The message that carries an aggregate report we send.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::flate2::Compression;
use mail_auth::flate2::write::GzEncoder;
use time::format_description::well_known::Rfc2822;

use super::Report;

pub(super) fn write(
    report: &Report,
    submitter: &str,
    from: &str,
    to: &[String],
    date: time::OffsetDateTime,
) -> std::io::Result<Vec<u8>> {
    let domain = report.domain();
    let report_id = report.report_id();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(report.to_xml().as_bytes())?;
    let attachment = BASE64.encode(gzip.finish()?);
    let file_name = format!(
        "{submitter}!{domain}!{}!{}.xml.gz",
        report.date_range_begin(),
        report.date_range_end()
    );
    let date = date.format(&Rfc2822).map_err(std::io::Error::other)?;
    // Unique per report: the report ID is unique per submitter (RFC 9990 §3.1.1.4).
    let boundary = format!("=_dmarc_{}", hex_digest(report_id.as_bytes()));
    let message_id = format!(
        "<dmarc.{}@{submitter}>",
        hex_digest(format!("{domain}\0{report_id}").as_bytes(),)
    );

    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", &format!("<{from}>"));
    header(
        "To",
        &to.iter()
            .map(|address| format!("<{address}>"))
            .collect::<Vec<_>>()
            .join(",\r\n "),
    );
    header("Date", &date);
    header("Message-ID", &message_id);
    // Folded before "Report-ID:"; unfolding gives back the single-line form.
    header(
        "Subject",
        &format!("Report Domain: {domain} Submitter: {submitter}\r\n Report-ID: <{report_id}>"),
    );
    header("Auto-Submitted", "auto-generated");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/mixed;\r\n boundary=\"{boundary}\""),
    );
    out.push_str("\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    out.push_str(&format!(
        "DMARC aggregate report (RFC 9990) from {submitter}\r\n\r\n\
         Report Domain: {domain}\r\nSubmitter: {submitter}\r\nReport-ID: {report_id}\r\n\r\n"
    ));
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str(&format!(
        "Content-Type: application/gzip;\r\n name=\"{file_name}\"\r\n\
         Content-Disposition: attachment;\r\n filename=\"{file_name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    for line in attachment.as_bytes().chunks(76) {
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
