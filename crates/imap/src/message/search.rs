//! What SEARCH looks at (RFC 9051 §6.4.4): header values with encoded words decoded, and
//! body text with transfer encodings and charsets decoded (mail-parser does both), compared
//! as case-insensitive substrings.

use mail_parser::parsers::MessageStream;
use mail_parser::{DateTime, HeaderName, HeaderValue, Message, PartType};

use super::TextScope;
use super::parts::{Content, PartRef};

pub(super) fn matches_text(message: &Message<'_>, needle: &str, scope: &TextScope) -> bool {
    let needle = needle.to_lowercase();
    let root = PartRef::root(message, 0);
    match scope {
        TextScope::Header(name) => header_values(root, name).any(|v| contains(&v, &needle)),
        TextScope::Body => body_contains(root, &needle),
        TextScope::Text => {
            all_header_values(root).any(|v| contains(&v, &needle)) || body_contains(root, &needle)
        }
    }
}

fn contains(haystack: &str, lowercase_needle: &str) -> bool {
    haystack.to_lowercase().contains(lowercase_needle)
}

/// Decoded values of the fields named `name` in `part`'s header, in order.
pub(super) fn header_values<'m>(
    part: PartRef<'m, '_>,
    name: &str,
) -> impl Iterator<Item = String> + 'm {
    let name = name.to_string();
    part.part()
        .headers
        .iter()
        .filter(move |h| h.name.as_str().eq_ignore_ascii_case(&name))
        .map(move |h| decode_value(part, h.offset_start, h.offset_end))
}

fn all_header_values<'m>(part: PartRef<'m, '_>) -> impl Iterator<Item = String> + 'm {
    part.part()
        .headers
        .iter()
        .map(move |h| decode_value(part, h.offset_start, h.offset_end))
}

/// A raw field value unfolded with RFC 2047 encoded words decoded.
fn decode_value(part: PartRef<'_, '_>, start: u32, end: u32) -> String {
    let raw = part
        .message
        .raw_message
        .get(start as usize..end as usize)
        .unwrap_or_default();
    match MessageStream::new(raw).parse_unstructured() {
        HeaderValue::Text(text) => text.trim().to_string(),
        _ => String::new(),
    }
}

/// Searches every leaf's decoded text and the headers of encapsulated messages, walking
/// with an explicit stack (bounded by the part count and the depth limit).
fn body_contains(root: PartRef<'_, '_>, needle: &str) -> bool {
    let mut stack = vec![root];
    while let Some(part) = stack.pop() {
        match part.content() {
            Content::Multipart(children) => stack.extend(children.into_iter().rev()),
            Content::Message(nested) => {
                let nested_root = PartRef::root(nested, part.depth + 1);
                if all_header_values(nested_root).any(|v| contains(&v, needle)) {
                    return true;
                }
                stack.push(nested_root);
            }
            Content::Leaf => {
                let found = match &part.part().body {
                    PartType::Text(text) | PartType::Html(text) => contains(text, needle),
                    // Attachments count when their decoded content is text.
                    PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                        std::str::from_utf8(bytes).is_ok_and(|text| contains(text, needle))
                    }
                    // A part past the depth limit: its stored bytes, if they are text.
                    PartType::Multipart(_) | PartType::Message(_) => {
                        std::str::from_utf8(part.body_bytes())
                            .is_ok_and(|text| contains(text, needle))
                    }
                };
                if found {
                    return true;
                }
            }
        }
    }
    false
}

/// The first Date: field, parsed.
pub(super) fn sent_date(message: &Message<'_>) -> Option<DateTime> {
    PartRef::root(message, 0)
        .first_parsed(HeaderName::Date)
        .and_then(HeaderValue::as_datetime)
        .filter(|date| date.is_valid())
        .copied()
}
