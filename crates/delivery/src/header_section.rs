//! What the worker reads from a queued message's header section: `TLS-Required: No`
//! (RFC 8689 §5), by which the sender asks that the recipient domain's TLS policy
//! (MTA-STS, DANE, our downgrade memory) be ignored so that, say, a report about broken
//! TLS still arrives; and the section itself, which a DSN returns (RFC 3462
//! text/rfc822-headers). Only the header section counts: a body line that looks like a
//! field is not one.

/// Whether the message's header section has a `TLS-Required` field whose value is `No`
/// (both case-insensitive, folding allowed).
pub(crate) fn asks_tls_not_required(message: &[u8]) -> bool {
    header_fields(message).any(|(name, value)| {
        name.trim_ascii().eq_ignore_ascii_case(b"TLS-Required")
            && unfolded(value).trim_ascii().eq_ignore_ascii_case(b"No")
    })
}

/// The header section without the empty line that ends it (all of a message that has
/// no body).
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let mut end = 0;
    while let Some(length) = field_end(&message[end..]) {
        end += length;
    }
    &message[..end]
}

/// The header fields, as (name, raw value with any folding), up to the first empty line.
fn header_fields(message: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = message;
    std::iter::from_fn(move || {
        loop {
            let end = field_end(rest)?;
            let (field, tail) = rest.split_at(end);
            rest = tail;
            // A line without a colon (or a continuation with no field before it) is no
            // field; skip it rather than stop, as readers of the message would.
            if let Some(colon) = field.iter().position(|&b| b == b':') {
                return Some((&field[..colon], &field[colon + 1..]));
            }
        }
    })
}

/// Where the field starting at `text` ends (after its last line's line break), or `None`
/// at the end of the header section.
fn field_end(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.starts_with(b"\r\n") || text.starts_with(b"\n") {
        return None;
    }
    let mut end = 0;
    loop {
        end += match text[end..].iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None => return Some(text.len()),
        };
        // RFC 5322 §2.2.3: a line starting with white space continues the field.
        if !text.get(end).is_some_and(|&b| b == b' ' || b == b'\t') {
            return Some(end);
        }
    }
}

fn unfolded(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_required_no_is_found_case_insensitively() {
        for header in [
            "TLS-Required: No",
            "tls-required: no",
            "TLS-REQUIRED:NO",
            "Tls-Required:   nO   ",
        ] {
            let message = format!("From: a@example.org\r\n{header}\r\nSubject: x\r\n\r\nbody\r\n");
            assert!(asks_tls_not_required(message.as_bytes()), "{header}");
        }
    }

    #[test]
    fn folded_value_counts() {
        let message = b"From: a@example.org\r\nTLS-Required:\r\n No\r\n\r\nbody\r\n";
        assert!(asks_tls_not_required(message));
    }

    #[test]
    fn a_body_line_is_not_a_header_field() {
        let message = b"From: a@example.org\r\nSubject: x\r\n\r\nTLS-Required: No\r\n";
        assert!(!asks_tls_not_required(message));
        let bare_lf = b"From: a@example.org\n\nTLS-Required: No\n";
        assert!(!asks_tls_not_required(bare_lf));
    }

    #[test]
    fn other_values_and_similar_names_do_not_count() {
        for header in [
            "TLS-Required: Yes",
            "TLS-Required: No thanks",
            "X-TLS-Required: No",
            "TLS-Required-Not: No",
            "Subject: TLS-Required: No",
        ] {
            let message = format!("From: a@example.org\r\n{header}\r\n\r\n");
            assert!(!asks_tls_not_required(message.as_bytes()), "{header}");
        }
    }

    #[test]
    fn header_section_ends_before_the_empty_line() {
        let message = b"From: a@example.org\r\nSubject: x\r\n y\r\n\r\nbody\r\n\r\nmore\r\n";
        assert_eq!(
            header_section(message),
            b"From: a@example.org\r\nSubject: x\r\n y\r\n"
        );
        assert_eq!(header_section(b"From: a\n\nbody"), b"From: a\n");
        assert_eq!(header_section(b"From: a"), b"From: a");
        assert_eq!(header_section(b"\r\nbody"), b"");
    }

    #[test]
    fn a_message_without_body_or_line_end_is_read_to_its_end() {
        assert!(asks_tls_not_required(b"TLS-Required: No"));
        assert!(!asks_tls_not_required(b""));
        assert!(!asks_tls_not_required(b"\r\nTLS-Required: No\r\n"));
    }
}
