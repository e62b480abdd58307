//! BODY[section] and BINARY[part] contents (RFC 9051 §6.4.5, RFC 3516).

use mail_parser::decoders::base64::base64_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderName, HeaderValue, Message};

use super::BinaryError;
use super::parts::{Content, PartRef, Target, resolve};
use crate::section::{Section, SectionText};

/// The bytes of `section`, or None when the section names no part of this message (or
/// names HEADER/TEXT of a part that is not an encapsulated message).
pub(super) fn section_bytes(message: &Message<'_>, section: &Section) -> Option<Vec<u8>> {
    let target = resolve(message, &section.part)?;
    let Some(text) = &section.text else {
        return Some(match target {
            Target::Message(message) => message.raw_message.to_vec(),
            Target::Part(part) => part.body_bytes().to_vec(),
        });
    };
    // MIME names the header of the part itself; HEADER and TEXT name the header and body
    // of the message the part encapsulates (or of the stored message for an empty path).
    if let SectionText::Mime = text {
        return match target {
            Target::Part(part) => Some(part.header_bytes().to_vec()),
            Target::Message(_) => None,
        };
    }
    let root = match target {
        Target::Message(message) => PartRef::root(message, 0),
        Target::Part(part) => match part.content() {
            Content::Message(nested) => PartRef::root(nested, part.depth + 1),
            _ => return None,
        },
    };
    Some(match text {
        SectionText::Header => root.header_bytes().to_vec(),
        SectionText::Text => root.body_bytes().to_vec(),
        SectionText::HeaderFields { not, fields } => {
            header_fields(root.header_bytes(), fields, *not)
        }
        SectionText::Mime => return None,
    })
}

/// The header fields whose names are (or, with `not`, are not) in `names`, each as stored
/// with its folded continuation lines, then the blank line (RFC 9051 §6.4.5).
fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields(header) {
        let Some(name) = field.name else { continue };
        let listed = names
            .iter()
            .any(|wanted| wanted.as_bytes().eq_ignore_ascii_case(name));
        if listed != not {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

struct Field<'h> {
    /// None for a line that is not a field (no colon).
    name: Option<&'h [u8]>,
    /// The whole field: first line and continuation lines with their line ends.
    raw: &'h [u8],
}

/// Splits a header block into fields; stops at the blank line.
fn fields(header: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut rest = header;
    std::iter::from_fn(move || {
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let mut end = 0;
        loop {
            end += rest[end..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len() - end, |i| i + 1);
            match rest.get(end) {
                Some(b' ' | b'\t') => continue,
                _ => break,
            }
        }
        let (raw, tail) = rest.split_at(end);
        rest = tail;
        let name = raw
            .iter()
            .position(|&b| b == b':')
            .filter(|&colon| !raw[..colon].contains(&b'\n'))
            .map(|colon| raw[..colon].trim_ascii_end());
        Some(Field { name, raw })
    })
}

/// BINARY[part]: the part's content with its transfer encoding undone.
pub(super) fn binary_bytes(message: &Message<'_>, path: &[u32]) -> Result<Vec<u8>, BinaryError> {
    let part = match resolve(message, path).ok_or(BinaryError::NoSuchPart)? {
        Target::Message(message) => return Ok(message.raw_message.to_vec()),
        Target::Part(part) => part,
    };
    let encoding = part
        .last_parsed(HeaderName::ContentTransferEncoding)
        .and_then(HeaderValue::as_text)
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let body = part.body_bytes();
    match encoding.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => Ok(decode_base64(body)),
        "quoted-printable" => Ok(decode_quoted_printable(body)),
        _ => Err(BinaryError::UnknownEncoding),
    }
}

/// Base64 as found in mail: line breaks and stray characters are skipped, as every mail
/// reader does, rather than failing the whole FETCH.
fn decode_base64(body: &[u8]) -> Vec<u8> {
    let alphabet: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    base64_decode(&alphabet).unwrap_or_default()
}

/// mail-parser's lenient MIME decoder (soft line breaks, bad escapes kept literally).
fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let (end, decoded) = MessageStream::new(body).decode_quoted_printable_mime(b"");
    if end == usize::MAX {
        body.to_vec()
    } else {
        decoded.into_owned()
    }
}
