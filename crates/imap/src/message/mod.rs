//! The FETCH and SEARCH views of a stored message: ENVELOPE, BODY/BODYSTRUCTURE, body
//! sections, BINARY and text matching, as pure functions over the raw bytes.
//!
//! mail-parser does the MIME parsing and decoding; this module only walks its tree in IMAP
//! part numbering and renders IMAP syntax.

mod envelope;
mod parts;
mod search;
mod section;
mod strings;
mod structure;

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MessagePart, PartType};

use crate::section::Section;
use parts::PartRef;

pub use strings::{imap_string, nstring};

/// A stored message parsed once for any number of FETCH items and SEARCH keys.
pub struct ParsedMessage<'a> {
    message: Message<'a>,
}

/// Why BINARY[part] (RFC 3516) cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("no such body part")]
    NoSuchPart,
    /// The session answers `NO [UNKNOWN-CTE]`.
    #[error("unknown content-transfer-encoding")]
    UnknownEncoding,
}

/// Where SEARCH looks for a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextScope {
    /// BODY: the decoded text of the body parts.
    Body,
    /// TEXT: all header fields and the body.
    Text,
    /// HEADER name (and SUBJECT, FROM, TO, CC, BCC): the decoded values of that field.
    Header(String),
}

impl<'a> ParsedMessage<'a> {
    /// Parses `raw`. Never fails: bytes with no header at all are a message with an empty
    /// header whose whole content is one text/plain body.
    pub fn parse(raw: &'a [u8]) -> ParsedMessage<'a> {
        let message = MessageParser::default()
            .parse(raw)
            .filter(|m| !m.parts.is_empty())
            .unwrap_or_else(|| Message {
                parts: vec![MessagePart {
                    headers: Vec::new(),
                    is_encoding_problem: true,
                    body: PartType::Text(String::from_utf8_lossy(raw)),
                    encoding: mail_parser::Encoding::None,
                    offset_header: 0,
                    offset_body: 0,
                    offset_end: u32::try_from(raw.len()).unwrap_or(u32::MAX),
                }],
                raw_message: Cow::Borrowed(raw),
                ..Message::default()
            });
        ParsedMessage { message }
    }

    fn root(&self) -> PartRef<'_, 'a> {
        PartRef::root(&self.message, 0)
    }

    /// ENVELOPE (RFC 9051 §7.5.2), parentheses included.
    pub fn envelope(&self) -> String {
        let mut out = String::new();
        envelope::write_envelope(&mut out, self.root());
        out
    }

    /// BODY (`extensible` false) or BODYSTRUCTURE (true), RFC 9051 §7.5.2, parentheses
    /// included.
    pub fn body_structure(&self, extensible: bool) -> String {
        let mut out = String::new();
        structure::write_body(&mut out, self.root(), extensible);
        out
    }

    /// BODY[section] before any `<origin.count>` is applied; None when the section names
    /// nothing in this message (the session answers NIL or an empty string).
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        section::section_bytes(&self.message, section)
    }

    /// BINARY[part]: the part with its Content-Transfer-Encoding undone. BINARY.SIZE is
    /// the length of this.
    pub fn binary_section(&self, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
        section::binary_bytes(&self.message, part)
    }

    /// The first `name` field of the message header, unfolded and with encoded words
    /// decoded (SEARCH HEADER, sorting).
    pub fn header_value(&self, name: &str) -> Option<String> {
        search::header_values(self.root(), name).next()
    }

    /// Whether `needle` occurs, ignoring case, in the decoded text that `scope` names.
    pub fn matches_text(&self, needle: &str, scope: TextScope) -> bool {
        search::matches_text(&self.message, needle, &scope)
    }

    /// The Date: field as Unix seconds.
    pub fn sent_date(&self) -> Option<i64> {
        search::sent_date(&self.message).map(|date| date.to_timestamp())
    }

    /// The calendar day written in the Date: field, in the field's own time zone: SENTBEFORE,
    /// SENTON and SENTSINCE compare this, "disregarding time and timezone" (RFC 9051 §6.4.4).
    pub fn sent_day(&self) -> Option<time::Date> {
        let date = search::sent_date(&self.message)?;
        let month = time::Month::try_from(date.month).ok()?;
        time::Date::from_calendar_date(i32::from(date.year), month, date.day).ok()
    }
}

/// mail-parser nests an encapsulated message inside its parent, so dropping a message that
/// wraps message/rfc822 ten thousand levels deep would recurse ten thousand times and
/// overflow the stack. Take the levels apart one at a time instead.
impl Drop for ParsedMessage<'_> {
    fn drop(&mut self) {
        let mut nested = Vec::new();
        take_nested(&mut self.message, &mut nested);
        while let Some(mut message) = nested.pop() {
            take_nested(&mut message, &mut nested);
        }
    }
}

fn take_nested<'a>(message: &mut Message<'a>, into: &mut Vec<Message<'a>>) {
    for part in &mut message.parts {
        if let PartType::Message(inner) = &mut part.body {
            into.push(std::mem::take(inner));
        }
    }
}

/// `<origin.count>` of a FETCH BODY[...] (RFC 9051 §6.4.5): the bytes from `origin`, at
/// most `count` of them; empty when `origin` is past the end.
pub fn partial(bytes: &[u8], origin: u32, count: u32) -> &[u8] {
    let start = (origin as usize).min(bytes.len());
    let end = start.saturating_add(count as usize).min(bytes.len());
    &bytes[start..end]
}

#[cfg(test)]
mod tests;
