//! The Authentication-Results header field (RFC 8601) we add, and the removal of any that
//! arrive claiming to be ours (§5: a receiver removes fields bearing its own authserv-id
//! before delivery, or a sender could forge our verdict).

use std::borrow::Cow;

/// Builds one header field: `Authentication-Results: authserv-id; method=result ...`,
/// one method per folded line.
pub(crate) struct ResultsHeader {
    text: String,
    methods: usize,
}

impl ResultsHeader {
    pub(crate) fn new(authserv_id: &str) -> Self {
        let mut text = String::with_capacity(512);
        text.push_str("Authentication-Results: ");
        text.push_str(&clean(authserv_id));
        Self { text, methods: 0 }
    }

    /// Adds `method=result (reason) ptype.property=value ...`.
    pub(crate) fn method(
        &mut self,
        method: &str,
        result: &str,
        reason: Option<&str>,
        properties: &[(&str, &str)],
    ) {
        self.methods += 1;
        self.text.push_str(";\r\n\t");
        self.text.push_str(method);
        self.text.push('=');
        self.text.push_str(result);
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            self.text.push_str(" (");
            self.text.push_str(&comment(reason));
            self.text.push(')');
        }
        for (property, value) in properties {
            if value.is_empty() {
                continue;
            }
            self.text.push(' ');
            self.text.push_str(property);
            self.text.push('=');
            self.text.push_str(&pvalue(value));
        }
    }

    /// The field, CRLF-terminated. With no method at all it says `none` (§2.2).
    pub(crate) fn finish(mut self) -> String {
        if self.methods == 0 {
            self.text.push_str("; none");
        }
        self.text.push_str("\r\n");
        self.text
    }
}

/// The message without the Authentication-Results fields whose authserv-id is
/// `authserv_id` (compared case-insensitively). Borrowed when there are none.
pub(crate) fn remove_own_results<'m>(message: &'m [u8], authserv_id: &str) -> Cow<'m, [u8]> {
    let header_end = header_end(message);
    let mut fields = Vec::new();
    let mut start = 0;
    while start < header_end {
        let end = field_end(message, start, header_end);
        fields.push(start..end);
        start = end;
    }
    let forged: Vec<_> = fields
        .iter()
        .filter(|range| claims(&message[range.start..range.end], authserv_id))
        .cloned()
        .collect();
    if forged.is_empty() {
        return Cow::Borrowed(message);
    }
    let mut kept = Vec::with_capacity(message.len());
    let mut from = 0;
    for range in forged {
        kept.extend_from_slice(&message[from..range.start]);
        from = range.end;
    }
    kept.extend_from_slice(&message[from..]);
    Cow::Owned(kept)
}

/// Where the header section ends: after the CRLF that precedes the empty line, or at the
/// end of a message that has no body.
fn header_end(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 0;
    }
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |pos| pos + 2)
}

/// The end of the field starting at `start`: past its last line's CRLF, its folded
/// continuation lines (starting with a space or tab) included.
fn field_end(message: &[u8], start: usize, limit: usize) -> usize {
    let mut pos = start;
    loop {
        match message[pos..limit].iter().position(|&b| b == b'\n') {
            Some(offset) => pos += offset + 1,
            None => return limit,
        }
        if pos >= limit || !matches!(message[pos], b' ' | b'\t') {
            return pos;
        }
    }
}

/// Whether a header field is Authentication-Results with `authserv_id` as its first
/// token (after optional CFWS).
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii();
    if !name.eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    let value = skip_cfws(&field[colon + 1..]);
    let id_len = value
        .iter()
        .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let id = &value[..id_len];
    let id = id.strip_suffix(b".").unwrap_or(id);
    id.eq_ignore_ascii_case(authserv_id.trim_end_matches('.').as_bytes())
}

/// Skips whitespace and (nested) comments.
fn skip_cfws(mut value: &[u8]) -> &[u8] {
    loop {
        value = value.trim_ascii_start();
        if value.first() != Some(&b'(') {
            return value;
        }
        let mut depth = 0usize;
        let mut escaped = false;
        let mut end = value.len();
        for (i, &b) in value.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        value = &value[end..];
    }
}

/// A header field value never carries control characters from the input (CR and LF
/// would start a new field).
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Comment text (RFC 5322 §3.2.2): parentheses and backslashes escaped.
fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in clean(text).chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A pvalue (RFC 8601 §2.2): as is when it is a token or an address of token
/// characters, quoted otherwise.
fn pvalue(value: &str) -> String {
    let value = clean(value);
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@".contains(c));
    if plain && !value.is_empty() {
        return value;
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_one_method_per_folded_line() {
        let mut header = ResultsHeader::new("mx.example.test");
        header.method("spf", "pass", None, &[("smtp.mailfrom", "a@example.org")]);
        header.method(
            "dkim",
            "fail",
            Some("body hash did not verify"),
            &[("header.d", "example.org"), ("header.b", "ab/+cd==")],
        );
        assert_eq!(
            header.finish(),
            "Authentication-Results: mx.example.test;\r\n\
             \tspf=pass smtp.mailfrom=a@example.org;\r\n\
             \tdkim=fail (body hash did not verify) header.d=example.org header.b=\"ab/+cd==\"\r\n"
        );
    }

    #[test]
    fn header_without_methods_says_none() {
        assert_eq!(
            ResultsHeader::new("mx.example.test").finish(),
            "Authentication-Results: mx.example.test; none\r\n"
        );
    }

    #[test]
    fn input_cannot_break_out_of_the_header() {
        let mut header = ResultsHeader::new("mx.example.test");
        header.method(
            "spf",
            "none",
            Some("odd (reason)\r\nX-Injected: yes"),
            &[("smtp.mailfrom", "\"we\\ird\"\r\n@example.org")],
        );
        let text = header.finish();
        assert_eq!(text.matches("\r\n").count(), 2, "{text}");
        assert!(text.contains("(odd \\(reason\\)X-Injected: yes)"), "{text}");
        assert!(
            text.contains("smtp.mailfrom=\"\\\"we\\\\ird\\\"@example.org\""),
            "{text}"
        );
    }

    #[test]
    fn forged_results_with_our_authserv_id_are_removed() {
        let message =
            b"Authentication-Results: MX.Example.Test;\r\n\tdkim=pass header.d=bank.test\r\n\
Authentication-Results: other.test; spf=pass smtp.mailfrom=x@y.test\r\n\
Subject: hi\r\n\
Authentication-Results: (comment) mx.example.test. ; dmarc=pass\r\n\
Authentication-Results:mx.example.test;spf=pass\r\n\
X-Authentication-Results: mx.example.test; kept\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body stays\r\n";
        let cleaned = remove_own_results(message, "mx.example.test");
        assert_eq!(
            String::from_utf8_lossy(&cleaned),
            "Authentication-Results: other.test; spf=pass smtp.mailfrom=x@y.test\r\n\
Subject: hi\r\n\
X-Authentication-Results: mx.example.test; kept\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body stays\r\n"
        );
    }

    #[test]
    fn authserv_id_must_match_whole() {
        let message = b"Authentication-Results: mx.example.test.evil; spf=pass\r\n\
Authentication-Results: evilmx.example.test; spf=pass\r\n\r\nbody\r\n";
        assert!(matches!(
            remove_own_results(message, "mx.example.test"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn message_without_body_is_handled() {
        let message = b"Authentication-Results: mx.example.test; spf=pass\r\nSubject: x\r\n";
        assert_eq!(
            &*remove_own_results(message, "mx.example.test"),
            b"Subject: x\r\n"
        );
    }
}
