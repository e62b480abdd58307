//! Which header fields a signature covers.

/// The fields RFC 6376 §5.4.1 recommends signing, plus Message-ID and the MIME fields
/// (so the body's structure cannot be re-labelled). Each is signed when present.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Fields listed in `h=` once more than they occur (RFC 6376 §5.4.2, §8.15), so that a
/// second From or Subject added in transit, or one where there was none, breaks the
/// signature instead of changing what the reader sees.
pub const OVERSIGNED_HEADERS: &[&str] = &["From", "Subject", "Date", "To", "Cc"];

/// The `h=` template for mail-auth's signer: each present field of [`SIGNED_HEADERS`]
/// once (mail-auth signs every occurrence of a listed name, bottom-up) followed by each
/// of [`OVERSIGNED_HEADERS`] once more (a repeated name has nothing left to match, so
/// mail-auth lists it again with nothing behind it: an oversigned null field).
pub fn headers_to_sign(message: &[u8]) -> Vec<&'static str> {
    let present = field_names(message);
    let mut headers: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .copied()
        .filter(|wanted| {
            present
                .iter()
                .any(|name| name.eq_ignore_ascii_case(wanted.as_bytes()))
        })
        .collect();
    headers.extend_from_slice(OVERSIGNED_HEADERS);
    headers
}

/// The names of the header fields, up to the first empty line. A field name is what
/// precedes the colon on a line that does not begin with white space (RFC 5322 §2.2).
fn field_names(message: &[u8]) -> Vec<&[u8]> {
    message
        .split(|&b| b == b'\n')
        .take_while(|line| !matches!(line, [] | [b'\r']))
        .filter(|line| !matches!(line.first(), Some(b' ' | b'\t')))
        .filter_map(|line| {
            line.iter()
                .position(|&b| b == b':')
                .map(|colon| &line[..colon])
        })
        .collect()
}
