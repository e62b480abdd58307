//! Walking mail-parser's MIME tree the way IMAP numbers it (RFC 9051 §6.4.5).
//!
//! mail-parser keeps each message's parts in one flat list (part 0 is the root, a multipart
//! names its children by index) and an encapsulated message/rfc822 as a nested `Message`.
//! Offsets of a part point into the `raw_message` of the message that holds it: the stored
//! bytes, or the decoded bytes of a base64/quoted-printable encapsulated message.
//!
//! Every walk stops at [`MAX_DEPTH`] levels so a hostile message cannot exhaust the stack
//! or the CPU; below that a part is opaque (see `structure.rs`).

use mail_parser::{HeaderName, HeaderValue, Message, MessagePart, PartType};

/// Multipart and message/rfc822 levels that are walked into; deeper parts are opaque.
pub(super) const MAX_DEPTH: usize = 32;

/// One MIME part and the message whose buffer its offsets refer to.
#[derive(Clone, Copy)]
pub(super) struct PartRef<'m, 'a> {
    pub message: &'m Message<'a>,
    pub id: usize,
    /// Multipart/message levels above this part; the root of the stored message is 0.
    pub depth: usize,
}

/// What a part holds, as far as the walk goes.
pub(super) enum Content<'m, 'a> {
    Multipart(Vec<PartRef<'m, 'a>>),
    Message(&'m Message<'a>),
    Leaf,
}

impl<'m, 'a> PartRef<'m, 'a> {
    pub fn root(message: &'m Message<'a>, depth: usize) -> Self {
        PartRef {
            message,
            id: 0,
            depth,
        }
    }

    pub fn part(&self) -> &'m MessagePart<'a> {
        // `id` comes from the message's own part list, so it is always in range.
        &self.message.parts[self.id]
    }

    fn bytes(&self, from: u32, to: u32) -> &'m [u8] {
        self.message
            .raw_message
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }

    /// The part's header, with the blank line that ends it.
    pub fn header_bytes(&self) -> &'m [u8] {
        let part = self.part();
        self.bytes(part.offset_header, part.offset_body)
    }

    /// The part's body as stored (still transfer-encoded).
    pub fn body_bytes(&self) -> &'m [u8] {
        let part = self.part();
        self.bytes(part.offset_body, part.offset_end)
    }

    /// Whether the walk may go below this part.
    pub fn can_descend(&self) -> bool {
        self.depth < MAX_DEPTH
    }

    /// The part's children, or its encapsulated message, unless it lies at the depth limit.
    pub fn content(&self) -> Content<'m, 'a> {
        if !self.can_descend() {
            return Content::Leaf;
        }
        match &self.part().body {
            PartType::Multipart(ids) => Content::Multipart(
                ids.iter()
                    .map(|&id| id as usize)
                    // Children always follow their parent in the list; anything else is
                    // not a tree and is not followed.
                    .filter(|&id| id > self.id && id < self.message.parts.len())
                    .map(|id| PartRef {
                        message: self.message,
                        id,
                        depth: self.depth + 1,
                    })
                    .collect(),
            ),
            PartType::Message(nested) if !nested.parts.is_empty() => Content::Message(nested),
            _ => Content::Leaf,
        }
    }

    /// The raw bytes of this part's header field `name`: the value after the colon, with
    /// folding and the line end still in it. MIME fields take the last occurrence, as
    /// mail-parser does when it decides the part's structure.
    pub fn last_field(&self, name: HeaderName<'_>) -> Option<&'m [u8]> {
        self.part()
            .headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .map(|h| self.bytes(h.offset_start, h.offset_end))
    }

    /// The raw value of the first field `name`, for envelope fields.
    pub fn first_field(&self, name: HeaderName<'_>) -> Option<&'m [u8]> {
        self.part()
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.bytes(h.offset_start, h.offset_end))
    }

    /// The parsed value of the first field `name`.
    pub fn first_parsed(&self, name: HeaderName<'_>) -> Option<&'m HeaderValue<'a>> {
        self.part()
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// The parsed value of the last field `name`.
    pub fn last_parsed(&self, name: HeaderName<'_>) -> Option<&'m HeaderValue<'a>> {
        self.part()
            .headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }
}

/// A raw header value unfolded (CR and LF removed, RFC 5322 §2.2.3) and trimmed, as text.
pub(super) fn unfolded(raw: &[u8]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Where a section path leads (RFC 9051 §6.4.5).
pub(super) enum Target<'m, 'a> {
    /// The stored message itself (an empty path).
    Message(&'m Message<'a>),
    Part(PartRef<'m, 'a>),
}

/// Follows `path` from the stored message. Part `n` of a message is the n-th child of its
/// root when the root is multipart; a message with a single-part root has only part 1,
/// which is that root. A message/rfc822 part is walked into the same way.
pub(super) fn resolve<'m, 'a>(message: &'m Message<'a>, path: &[u32]) -> Option<Target<'m, 'a>> {
    let mut target = Target::Message(message);
    for &number in path {
        let index = (number as usize).checked_sub(1)?;
        target = match target {
            Target::Message(message) => step_into_message(message, 0, index)?,
            Target::Part(part) => match part.content() {
                Content::Multipart(children) => Target::Part(*children.get(index)?),
                Content::Message(nested) => step_into_message(nested, part.depth + 1, index)?,
                Content::Leaf => return None,
            },
        };
    }
    Some(target)
}

fn step_into_message<'m, 'a>(
    message: &'m Message<'a>,
    root_depth: usize,
    index: usize,
) -> Option<Target<'m, 'a>> {
    let root = PartRef::root(message, root_depth);
    match root.content() {
        Content::Multipart(children) => children.get(index).copied().map(Target::Part),
        _ if index == 0 => Some(Target::Part(root)),
        _ => None,
    }
}
