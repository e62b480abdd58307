//! Mailbox names on the wire. IMAP4rev1 clients send and expect modified UTF-7 (RFC
//! 3501 §5.1.3: `&` starts a base64 run of UTF-16); IMAP4rev2 clients use UTF-8 (RFC
//! 9051 §5.1). The store keeps UTF-8.

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// Base64 with `,` for `/` and no padding (RFC 3501 §5.1.3).
fn engine() -> GeneralPurpose {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .expect("a valid 64-character alphabet");
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    )
}

/// A name as the client sent it, in UTF-8. `utf8` is set once IMAP4rev2 is enabled;
/// before, modified UTF-7 is decoded, and plain UTF-8 (which some clients send anyway)
/// is accepted when the bytes are not valid modified UTF-7.
pub fn decode(raw: &[u8], utf8: bool) -> Option<String> {
    if !utf8 && let Some(name) = decode_utf7(raw) {
        return Some(name);
    }
    String::from_utf8(raw.to_vec()).ok()
}

fn decode_utf7(raw: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'&' {
            let end = tail.iter().position(|&c| c == b'-')?;
            if end == 0 {
                out.push('&');
            } else {
                let bytes = engine().decode(&tail[..end]).ok()?;
                if bytes.len() % 2 != 0 {
                    return None;
                }
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect();
                let decoded = String::from_utf16(&units).ok()?;
                // An encoded run of printable ASCII is not the canonical form: refuse it.
                if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                    return None;
                }
                out.push_str(&decoded);
            }
            rest = &tail[end + 1..];
        } else if (0x20..0x7f).contains(&b) {
            out.push(b as char);
            rest = tail;
        } else {
            return None;
        }
    }
    Some(out)
}

/// A stored name as the client expects it.
pub fn encode(name: &str, utf8: bool) -> String {
    if utf8 {
        return name.to_string();
    }
    let mut out = String::new();
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if !run.is_empty() {
            let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine().encode(bytes));
            out.push('-');
            run.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips_rfc_example() {
        // RFC 3501 §5.1.3
        let name = "~peter/mail/台北/日本語";
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(name, false), wire);
        assert_eq!(decode(wire.as_bytes(), false).as_deref(), Some(name));
        assert_eq!(encode("a&b", false), "a&-b");
        assert_eq!(decode(b"a&-b", false).as_deref(), Some("a&b"));
    }

    #[test]
    fn utf8_names_pass_through_for_imap4rev2() {
        assert_eq!(encode("Entwürfe", true), "Entwürfe");
        assert_eq!(
            decode("Entwürfe".as_bytes(), true).as_deref(),
            Some("Entwürfe")
        );
        assert_eq!(decode(b"&U,BTFw-", true).as_deref(), Some("&U,BTFw-"));
        assert_eq!(
            decode("Entwürfe".as_bytes(), false).as_deref(),
            Some("Entwürfe")
        );
    }
}
