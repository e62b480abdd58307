//! The message that carries a report we send. DMARC aggregate reports (RFC 9990 §5.3)
//! and SMTP TLS reports (RFC 8460 §5.3) share one shape: a folded subject naming the
//! domain, submitter and report ID, a short text part, and the report gzipped as a
//! base64 attachment. [`write_report_mail`] writes that shape; the kinds differ only in
//! the fields of [`ReportMail`].

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_auth::flate2::Compression;
use mail_auth::flate2::write::GzEncoder;
use time::format_description::well_known::Rfc2822;

use super::Report;

/// One report message to write. Lines end in CRLF.
pub struct ReportMail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub date: time::OffsetDateTime,
    pub domain: &'a str,
    pub submitter: &'a str,
    pub report_id: &'a str,
    pub message_id: &'a str,
    pub boundary: &'a str,
    /// Header fields of the kind, written after the subject.
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// The top-level type without its boundary, e.g. `multipart/mixed`.
    pub content_type: &'a str,
    /// The first line of the text part, e.g. `DMARC aggregate report (RFC 9990)`.
    pub title: &'a str,
    pub attachment_type: &'a str,
    pub file_name: &'a str,
    /// The report itself, gzipped into the attachment.
    pub report: &'a [u8],
}

pub fn write_report_mail(mail: &ReportMail<'_>) -> std::io::Result<Vec<u8>> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(mail.report)?;
    let attachment = BASE64.encode(gzip.finish()?);
    let date = mail.date.format(&Rfc2822).map_err(std::io::Error::other)?;
    let ReportMail {
        domain,
        submitter,
        report_id,
        boundary,
        file_name,
        ..
    } = *mail;

    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", &format!("<{}>", mail.from));
    header(
        "To",
        &mail
            .to
            .iter()
            .map(|address| format!("<{address}>"))
            .collect::<Vec<_>>()
            .join(",\r\n "),
    );
    header("Date", &date);
    header("Message-ID", mail.message_id);
    // Folded before "Report-ID:"; unfolding gives back the single-line form.
    header(
        "Subject",
        &format!("Report Domain: {domain} Submitter: {submitter}\r\n Report-ID: <{report_id}>"),
    );
    for (name, value) in mail.extra_headers {
        header(name, value);
    }
    header("Auto-Submitted", "auto-generated");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("{};\r\n boundary=\"{boundary}\"", mail.content_type),
    );
    out.push_str("\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    out.push_str(&format!(
        "{} from {submitter}\r\n\r\n\
         Report Domain: {domain}\r\nSubmitter: {submitter}\r\nReport-ID: {report_id}\r\n\r\n",
        mail.title
    ));
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str(&format!(
        "Content-Type: {};\r\n name=\"{file_name}\"\r\n\
         Content-Disposition: attachment;\r\n filename=\"{file_name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
        mail.attachment_type
    ));
    for line in attachment.as_bytes().chunks(76) {
        // Base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out.into_bytes())
}

/// The DMARC aggregate report as a message.
pub(super) fn write(
    report: &Report,
    submitter: &str,
    from: &str,
    to: &[String],
    date: time::OffsetDateTime,
) -> std::io::Result<Vec<u8>> {
    let domain = report.domain();
    let report_id = report.report_id();
    let file_name = format!(
        "{submitter}!{domain}!{}!{}.xml.gz",
        report.date_range_begin(),
        report.date_range_end()
    );
    // Unique per report: the report ID is unique per submitter (RFC 9990 §3.1.1.4).
    let boundary = format!("=_dmarc_{}", report_digest(report_id.as_bytes()));
    let message_id = format!(
        "<dmarc.{}@{submitter}>",
        report_digest(format!("{domain}\0{report_id}").as_bytes())
    );
    write_report_mail(&ReportMail {
        from,
        to,
        date,
        domain,
        submitter,
        report_id,
        message_id: &message_id,
        boundary: &boundary,
        extra_headers: &[],
        content_type: "multipart/mixed",
        title: "DMARC aggregate report (RFC 9990)",
        attachment_type: "application/gzip",
        file_name: &file_name,
        report: report.to_xml().as_bytes(),
    })
}

/// 24 hex digits of SHA-256: a boundary or Message-ID part unique per report.
pub fn report_digest(data: &[u8]) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    hash.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
