//! DMARC aggregate reports (RFC 9990): reading the ones other organisations mail us
//! (XML, gzip or zip, by mail-auth's parser) and writing the ones we send, with the
//! checks on where they may go (`rua` URIs, external destination verification).

mod message;

pub use message::{ReportMail, report_digest, write_report_mail};

use sealpost_dns::{LookupError, Resolver};

pub use mail_auth::report::{
    ActionDisposition, Alignment, DKIMAuthResult, Discovery, Disposition, DkimResult, DmarcResult,
    PolicyPublished, Record, Report, SPFAuthResult, SPFDomainScope, SpfResult,
};

/// Largest report we decompress: a day of mail from a busy sender is a few MiB of XML,
/// and a cap keeps a zip bomb from filling memory.
pub const MAX_REPORT_SIZE: usize = 32 * 1024 * 1024;

/// The aggregate report in a report message, whether the XML is attached as is, gzipped
/// or zipped; `None` for any other message.
pub fn parse_aggregate_report(message: &[u8]) -> Option<Report> {
    Report::parse_rfc5322(message, MAX_REPORT_SIZE).ok()
}

/// The report as a message (RFC 9990 §5.3): subject `Report Domain: … Submitter: …
/// Report-ID: <…>`, a short text part and the XML gzipped as an `application/gzip`
/// attachment named `submitter!domain!begin!end.xml.gz`. Lines end in CRLF.
///
/// Written here rather than by mail-auth's `write_rfc5322`, which Q-encodes the whole
/// subject (the `<` of the report ID makes its builder think it needs to).
pub fn aggregate_report_message(
    report: &Report,
    submitter: &str,
    from: &str,
    to: &[String],
    date: time::OffsetDateTime,
) -> std::io::Result<Vec<u8>> {
    message::write(report, submitter, from, to, date)
}

/// One `mailto:` destination of a `rua` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDestination {
    pub address: String,
    /// The `!size` suffix in octets (RFC 9990 §3.2 with RFC 9989's URI syntax): a
    /// report larger than this must not be sent there.
    pub max_size: Option<u64>,
}

impl ReportDestination {
    /// The domain of the address, lower-case.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// The `mailto:` URIs among `rua`; other schemes are ignored (RFC 9989 §4.7 lets a
/// receiver send only to those it supports). Percent-escapes in the address are decoded.
pub fn mailto_destinations(rua: &[String]) -> Vec<ReportDestination> {
    rua.iter()
        .flat_map(|uris| uris.split(','))
        .filter_map(|uri| {
            let uri = uri.trim();
            let rest = uri
                .get(..7)?
                .eq_ignore_ascii_case("mailto:")
                .then(|| &uri[7..])?;
            let (address, size) = match rest.rsplit_once('!') {
                Some((address, size)) => (address, parse_size(size)),
                None => (rest, None),
            };
            let address = percent_decode(address)?.to_ascii_lowercase();
            let (local, domain) = address.rsplit_once('@')?;
            (!local.is_empty() && crate::keys::normalise_domain(domain).is_ok()).then(|| {
                ReportDestination {
                    address: address.clone(),
                    max_size: size,
                }
            })
        })
        .collect()
}

/// True when `destination` is `policy_domain`, a subdomain of it or a parent of it: the
/// same organisation without consulting the public suffix list. Anything else is an
/// external destination and needs [`external_destination_authorised`].
pub fn same_organisation(policy_domain: &str, destination: &str) -> bool {
    let a = policy_domain.trim_end_matches('.').to_ascii_lowercase();
    let b = destination.trim_end_matches('.').to_ascii_lowercase();
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

/// RFC 9990 §4 (external destination verification): `destination` accepts reports about
/// `policy_domain` when `<policy_domain>._report._dmarc.<destination>` has a TXT record
/// starting with `v=DMARC1`. NXDOMAIN or NODATA means no; a failed lookup is an error,
/// so the caller can try again later.
pub async fn external_destination_authorised(
    resolver: &Resolver,
    policy_domain: &str,
    destination: &str,
) -> Result<bool, LookupError> {
    let name = format!(
        "{}._report._dmarc.{}",
        policy_domain.trim_end_matches('.'),
        destination.trim_end_matches('.')
    );
    match resolver.txt(&name).await {
        Ok(records) => Ok(records.iter().any(|record| {
            record
                .get(..8)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"v=DMARC1"))
        })),
        Err(e) if e.is_empty_answer() => Ok(false),
        Err(e) => Err(e),
    }
}

/// `10m`, `50k`, `1g`, `2t` or a plain number of octets.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, ' '),
    };
    let shift = match unit {
        ' ' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
