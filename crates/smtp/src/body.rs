//! The message content of one transaction as it arrives, from DATA (after dot-unstuffing)
//! or from BDAT chunks: bounded in size, and checked for bare CR and bare LF.
//!
//! A message is rejected the moment it breaks a rule, and from then on its bytes are
//! counted and dropped rather than kept, so an oversized message never sits in memory.

use crate::reply::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than `max_message_size`.
    TooBig,
    /// A CR not followed by LF, or an LF not preceded by CR. Such line endings are how
    /// SMTP smuggling works (CVE-2023-51764/5/6), so they are refused outright.
    BareLineEnding,
    /// A DATA line longer than `max_text_line`.
    LineTooLong,
}

impl BodyError {
    pub(crate) fn reply(self) -> Reply {
        match self {
            BodyError::TooBig => Reply::message_too_big(),
            BodyError::BareLineEnding => Reply::bare_line_ending(),
            BodyError::LineTooLong => Reply::text_line_too_long(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct MessageBody {
    bytes: Vec<u8>,
    /// Octets seen, kept or not.
    size: usize,
    max_size: usize,
    /// The last octet seen was a CR, so the next must be LF.
    after_cr: bool,
    error: Option<BodyError>,
}

impl MessageBody {
    pub(crate) fn new(max_size: usize) -> Self {
        Self {
            bytes: Vec::new(),
            size: 0,
            max_size,
            after_cr: false,
            error: None,
        }
    }

    /// Octets received so far, including any that were dropped.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn error(&self) -> Option<BodyError> {
        self.error
    }

    /// Rejects the message now when `more` further octets would take it past the limit,
    /// so none of them is buffered (BDAT announces its size up front).
    pub(crate) fn announce(&mut self, more: usize) {
        if self.size.saturating_add(more) > self.max_size {
            self.reject(BodyError::TooBig);
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.size = self.size.saturating_add(data.len());
        if self.error.is_some() {
            return;
        }
        if self.size > self.max_size {
            self.reject(BodyError::TooBig);
            return;
        }
        if !self.line_endings_are_crlf(data) {
            self.reject(BodyError::BareLineEnding);
            return;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Marks the message as refused and frees what was kept of it. The first error wins.
    pub(crate) fn reject(&mut self, error: BodyError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self.bytes = Vec::new();
    }

    /// The whole message, or why it was refused.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, BodyError> {
        if self.after_cr {
            self.reject(BodyError::BareLineEnding);
        }
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.bytes),
        }
    }

    /// Checks `data` for bare CR/LF, carrying a trailing CR over to the next call.
    fn line_endings_are_crlf(&mut self, data: &[u8]) -> bool {
        for &b in data {
            match (self.after_cr, b) {
                (true, b'\n') => self.after_cr = false,
                (true, _) => return false,
                (false, b'\n') => return false,
                (false, b'\r') => self.after_cr = true,
                (false, _) => {}
            }
        }
        true
    }

    /// Bytes currently held (tests check that refused messages hold none).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_split_across_pushes_is_fine() {
        let mut body = MessageBody::new(100);
        body.push(b"a\r");
        body.push(b"\nb\r\n");
        assert_eq!(body.finish(), Ok(b"a\r\nb\r\n".to_vec()));
    }

    #[test]
    fn bare_lf_bare_cr_and_trailing_cr_are_refused() {
        for input in [&b"a\nb\r\n"[..], b"a\rb\r\n", b"a\r\r\n", b"ab\r"] {
            let mut body = MessageBody::new(100);
            body.push(input);
            assert_eq!(body.finish(), Err(BodyError::BareLineEnding), "{input:?}");
        }
    }

    #[test]
    fn oversized_message_is_dropped_not_held() {
        let mut body = MessageBody::new(10);
        body.push(b"12345678");
        body.push(b"9012345678");
        assert_eq!(body.error(), Some(BodyError::TooBig));
        assert_eq!(body.held(), 0);
        body.push(&[b'x'; 4096]);
        assert_eq!(body.held(), 0);
        assert_eq!(body.size(), 8 + 10 + 4096);
        assert_eq!(body.finish(), Err(BodyError::TooBig));
    }

    #[test]
    fn announced_size_over_the_limit_rejects_before_any_byte_is_kept() {
        let mut body = MessageBody::new(10);
        body.announce(11);
        body.push(b"123");
        assert_eq!(body.held(), 0);
        assert_eq!(body.finish(), Err(BodyError::TooBig));
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let mut body = MessageBody::new(4);
        body.announce(4);
        body.push(b"ab\r\n");
        assert_eq!(body.finish(), Ok(b"ab\r\n".to_vec()));
    }
}
