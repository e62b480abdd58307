//! Header fields a submission server adds when the client left them out (RFC 6409 §8.2,
//! §8.3): `Date:` and `Message-ID:`, both required by RFC 5322 §3.6.

use rand::Rng;
use time::OffsetDateTime;

use crate::received::rfc5322_date;

/// The fields `message` lacks, ready to prepend (possibly empty).
pub(crate) fn missing_fields(message: &[u8], hostname: &str, now: OffsetDateTime) -> String {
    let mut fields = String::new();
    if !has_field(message, "Date") {
        fields.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    }
    if !has_field(message, "Message-ID") {
        let id: u128 = rand::rng().random();
        fields.push_str(&format!("Message-ID: <{id:032x}@{hostname}>\r\n"));
    }
    fields
}

/// Whether the header section (up to the first empty line) has a field called `name`.
fn has_field(message: &[u8], name: &str) -> bool {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue; // folded continuation of the previous field
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            // RFC 5322 §4.5.3 (obsolete syntax) allows white space before the colon.
            let field = line[..colon].trim_ascii_end();
            if field.eq_ignore_ascii_case(name.as_bytes()) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-03-05 07:08:09 UTC);

    #[test]
    fn both_added_when_missing() {
        let fields = missing_fields(b"Subject: x\r\n\r\nbody\r\n", "mail.example.test", NOW);
        let (date, id) = fields.split_once("\r\n").unwrap();
        assert_eq!(date, "Date: Tue, 05 Mar 2024 07:08:09 +0000");
        assert!(id.starts_with("Message-ID: <"), "{id}");
        assert!(id.ends_with("@mail.example.test>\r\n"), "{id}");
    }

    #[test]
    fn present_fields_are_left_alone_whatever_their_case() {
        let message = b"message-id: <a@b>\r\nDATE : Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n";
        assert_eq!(missing_fields(message, "h", NOW), "");
    }

    #[test]
    fn fields_in_the_body_do_not_count() {
        let message = b"Subject: x\r\n\r\nDate: not a header\r\nMessage-ID: <x@y>\r\n";
        let fields = missing_fields(message, "h", NOW);
        assert!(fields.starts_with("Date: "), "{fields}");
        assert!(fields.contains("Message-ID: <"), "{fields}");
    }

    #[test]
    fn folded_lines_are_not_field_names() {
        let message = b"Subject: a\r\n Date: folded\r\n\r\n";
        assert!(missing_fields(message, "h", NOW).starts_with("Date: "));
    }
}
