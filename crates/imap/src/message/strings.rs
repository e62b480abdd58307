//! IMAP strings (RFC 9051 §4.3): a value goes out as a quoted string when it can and as a
//! literal when it must.
//!
//! A quoted string cannot carry CR, LF or 8-bit octets, so those values become literals.
//! Like Dovecot, a value with many `"` or `\` is also sent as a literal rather than a
//! thicket of escapes. There is no length limit: a long printable value stays quoted.
//! NUL can be carried by neither form (CHAR8 excludes it), so it is sent as a space.

/// More escapes than this and the value reads better as a literal.
const MAX_ESCAPES: usize = 4;

/// `value` as an IMAP `string`: quoted when safe, `{n}\r\n` + bytes otherwise. NIL is the
/// caller's decision ([`nstring`]).
pub fn imap_string(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    push_bytes(&mut out, value);
    out
}

/// `value` as an IMAP `nstring`: NIL when absent, otherwise [`imap_string`].
pub fn nstring(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(value) => imap_string(value),
        None => b"NIL".to_vec(),
    }
}

fn needs_literal(value: &[u8]) -> bool {
    let mut escapes = 0;
    for &byte in value {
        match byte {
            b'\r' | b'\n' | 0x80.. => return true,
            b'"' | b'\\' => {
                escapes += 1;
                if escapes > MAX_ESCAPES {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn push_bytes(out: &mut Vec<u8>, value: &[u8]) {
    let clean = value.iter().map(|&b| if b == 0 { b' ' } else { b });
    if needs_literal(value) {
        out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
        out.extend(clean);
    } else {
        out.push(b'"');
        for byte in clean {
            if byte == b'"' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
        out.push(b'"');
    }
}

/// Appends `value` as an IMAP string to text being built (ENVELOPE, BODYSTRUCTURE). A
/// literal's count is the UTF-8 length, which is what goes on the wire.
pub(super) fn push_string(out: &mut String, value: &str) {
    if needs_literal(value.as_bytes()) {
        out.push_str(&format!("{{{}}}\r\n", value.len()));
        out.extend(value.chars().map(|c| if c == '\0' { ' ' } else { c }));
    } else {
        out.push('"');
        for c in value.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '\0' => out.push(' '),
                _ => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Appends `value` as an nstring.
pub(super) fn push_nstring(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => push_string(out, value),
        None => out.push_str("NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_quoted_with_quotes_and_backslashes_escaped() {
        assert_eq!(imap_string(b"hello world"), b"\"hello world\"");
        assert_eq!(imap_string(br#"say "hi" \o/"#), br#""say \"hi\" \\o/""#);
        assert_eq!(imap_string(b""), b"\"\"");
    }

    #[test]
    fn crlf_and_eight_bit_values_become_literals() {
        assert_eq!(imap_string(b"a\r\nb"), b"{4}\r\na\r\nb");
        assert_eq!(imap_string("Grüße".as_bytes()), "{7}\r\nGrüße".as_bytes());
    }

    #[test]
    fn many_escapes_become_a_literal() {
        assert_eq!(imap_string(b"\"\"\"\""), b"\"\\\"\\\"\\\"\\\"\"");
        assert_eq!(imap_string(b"\"\"\"\"\""), b"{5}\r\n\"\"\"\"\"");
    }

    #[test]
    fn long_printable_values_stay_quoted() {
        let long = "x".repeat(5000);
        let encoded = imap_string(long.as_bytes());
        assert_eq!(encoded.first(), Some(&b'"'));
        assert_eq!(encoded.len(), 5002);
    }

    #[test]
    fn nul_is_sent_as_a_space() {
        assert_eq!(imap_string(b"a\0b"), b"\"a b\"");
        assert_eq!(imap_string(b"\xff\0"), b"{2}\r\n\xff ");
    }

    #[test]
    fn nstring_is_nil_when_absent() {
        assert_eq!(nstring(None), b"NIL");
        assert_eq!(nstring(Some(b"x")), b"\"x\"");
    }

    #[test]
    fn text_variant_matches_byte_variant() {
        for value in [
            "plain",
            "with \"quote\"",
            "two\r\nlines",
            "ümlaut",
            "a\0b",
            "",
        ] {
            let mut text = String::new();
            push_string(&mut text, value);
            assert_eq!(text.as_bytes(), imap_string(value.as_bytes()));
        }
    }
}
