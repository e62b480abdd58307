//! The DATA receiver (RFC 5321 §4.1.1.4, §4.5.2): finds the end of the message, removes
//! dot-stuffing and enforces the line and size limits, without any I/O.
//!
//! The end of data is `<CRLF>.<CRLF>` and nothing else. Servers that also accepted
//! `<LF>.<LF>`, `<CRLF>.<LF>`, `<LF>.<CRLF>` or `<CR>.<CRLF>` let a sender hide a second
//! message, with its own MAIL/RCPT/DATA, inside the first (SMTP smuggling,
//! CVE-2023-51764/5/6). Here such sequences are message bytes: they are consumed as data
//! and make the message fail the bare CR/LF check, so nothing after them is ever run as a
//! command.

use crate::body::{BodyError, MessageBody};

/// Where the receiver is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first octet of a line (just after a CRLF, or after the DATA command).
    LineStart,
    /// A line started with `.`; the dot is removed whatever follows.
    Dot,
    /// `.` and CR at the start of a line: an LF now ends the data.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR.
    Cr,
}

#[derive(Debug)]
pub(crate) struct DataReceiver {
    body: MessageBody,
    state: State,
    /// Octets of the current line so far, its line ending included.
    line_len: usize,
    max_line: usize,
}

impl DataReceiver {
    pub(crate) fn new(max_message_size: usize, max_text_line: usize) -> Self {
        Self {
            body: MessageBody::new(max_message_size),
            state: State::LineStart,
            line_len: 0,
            max_line: max_text_line,
        }
    }

    /// Takes in octets received after the 354 reply. Returns how many were consumed and
    /// whether the end of data was reached; after the end, the rest of `input` belongs to
    /// the next command and is left unconsumed.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        // Content is copied to the body in runs; `run_start` is where the current run began.
        let mut run_start = 0;
        for (i, &b) in input.iter().enumerate() {
            self.line_len = self.line_len.saturating_add(1);
            if self.line_len > self.max_line {
                self.body.reject(BodyError::LineTooLong);
            }
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => {
                    self.body.push(&input[run_start..i]);
                    run_start = i + 1;
                    State::Dot
                }
                (State::Dot, b'\r') => {
                    // Held back: with an LF next, this CR is part of the end marker.
                    run_start = i + 1;
                    State::DotCr
                }
                (State::DotCr, b'\n') => return (i + 1, true),
                (State::DotCr, _) => {
                    // `.` CR and no LF: the CR was content (and a bare one).
                    self.body.push(b"\r");
                    after_text_octet(State::Cr, b)
                }
                (State::Dot, _) => after_text_octet(State::Text, b),
                (state, _) => after_text_octet(state, b),
            };
            if b == b'\n' {
                self.line_len = 0;
            }
        }
        self.body.push(&input[run_start..]);
        (input.len(), false)
    }

    /// The message once the end of data was seen, or why it is refused.
    pub(crate) fn finish(self) -> Result<Vec<u8>, BodyError> {
        self.body.finish()
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.body.held()
    }
}

/// The state after an ordinary content octet. A bare LF does not start a new line: only
/// CRLF does, so `<LF>.` can never begin an end marker.
fn after_text_octet(state: State, b: u8) -> State {
    match (state, b) {
        (State::Cr, b'\n') => State::LineStart,
        (_, b'\r') => State::Cr,
        _ => State::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(input: &[u8]) -> (usize, bool, Result<Vec<u8>, BodyError>) {
        let mut receiver = DataReceiver::new(1 << 20, 1000);
        let (consumed, complete) = receiver.feed(input);
        (consumed, complete, receiver.finish())
    }

    /// Feeds `input` split at every possible point and one octet at a time; the result
    /// must not depend on how the network cut it up.
    fn receive_in_pieces(input: &[u8]) -> (usize, Result<Vec<u8>, BodyError>) {
        let (consumed, complete, whole) = receive(input);
        assert!(complete);
        for split in 0..=input.len() {
            let mut receiver = DataReceiver::new(1 << 20, 1000);
            let (a, done) = receiver.feed(&input[..split]);
            let total = if done {
                a
            } else {
                let (b, done) = receiver.feed(&input[split..]);
                assert!(done, "split at {split}");
                a + b
            };
            assert_eq!(total, consumed, "split at {split}");
            assert_eq!(receiver.finish(), whole, "split at {split}");
        }
        let mut receiver = DataReceiver::new(1 << 20, 1000);
        let mut total = 0;
        for octet in input.chunks(1) {
            let (n, done) = receiver.feed(octet);
            total += n;
            if done {
                break;
            }
        }
        assert_eq!(total, consumed);
        assert_eq!(receiver.finish(), whole);
        (consumed, whole)
    }

    #[test]
    fn crlf_dot_crlf_ends_the_message_and_leaves_the_rest() {
        let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (consumed, message) = receive_in_pieces(input);
        assert_eq!(&input[consumed..], b"QUIT\r\n");
        assert_eq!(message, Ok(b"Subject: hi\r\n\r\nbody\r\n".to_vec()));
    }

    #[test]
    fn a_lone_dot_line_right_after_data_is_an_empty_message() {
        assert_eq!(receive_in_pieces(b".\r\n"), (3, Ok(Vec::new())));
    }

    #[test]
    fn data_with_bare_lf_dot_is_not_end_of_message() {
        for smuggle in [&b"\n.\n"[..], b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"] {
            let mut input = b"Subject: a\r\n\r\nfirst".to_vec();
            input.extend_from_slice(smuggle);
            input.extend_from_slice(
                b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n",
            );
            input.extend_from_slice(b".\r\n");
            let real_end = input.len();
            input.extend_from_slice(b"NOOP\r\n");
            // The only CRLF.CRLF is the one after "smuggled".
            assert_eq!(&input[real_end - 5..real_end], b"\r\n.\r\n");
            let (consumed, message) = receive_in_pieces(&input);
            assert_eq!(consumed, real_end, "{smuggle:?}");
            assert_eq!(message, Err(BodyError::BareLineEnding), "{smuggle:?}");
        }
    }

    #[test]
    fn dot_stuffing_is_removed() {
        let (_, message) = receive_in_pieces(b"..x\r\n..\r\n...\r\nmid.dle\r\n.\r\n");
        assert_eq!(message, Ok(b".x\r\n.\r\n..\r\nmid.dle\r\n".to_vec()));
    }

    #[test]
    fn eight_bit_content_is_kept_exactly() {
        let body = "Subject: Grüße\r\n\r\nПривет, 世界 🚀\r\n";
        let mut input = body.as_bytes().to_vec();
        input.extend_from_slice(b".\r\n");
        assert_eq!(receive_in_pieces(&input).1, Ok(body.as_bytes().to_vec()));
    }

    #[test]
    fn dot_cr_without_lf_is_content_with_a_bare_cr() {
        let (consumed, message) = receive_in_pieces(b".\rx\r\n.\r\n");
        assert_eq!(consumed, 8);
        assert_eq!(message, Err(BodyError::BareLineEnding));
    }

    #[test]
    fn line_of_exactly_max_text_line_is_accepted() {
        let mut input = vec![b'a'; 998];
        input.extend_from_slice(b"\r\n.\r\n");
        let (_, _, message) = receive(&input);
        assert_eq!(message.map(|m| m.len()), Ok(1000));
    }

    #[test]
    fn line_longer_than_max_text_line_is_refused_after_reading_to_the_end() {
        let mut input = vec![b'a'; 999];
        input.extend_from_slice(b"\r\nnext\r\n.\r\nNOOP\r\n");
        let mut receiver = DataReceiver::new(1 << 20, 1000);
        let (consumed, complete) = receiver.feed(&input);
        assert!(complete);
        assert_eq!(&input[consumed..], b"NOOP\r\n");
        assert_eq!(receiver.held(), 0);
        assert_eq!(receiver.finish(), Err(BodyError::LineTooLong));
    }

    #[test]
    fn oversized_message_is_discarded_while_reading_to_the_end() {
        let mut receiver = DataReceiver::new(100, 1000);
        let line = [b"x".repeat(78), b"\r\n".to_vec()].concat();
        for round in 0..1000 {
            assert_eq!(receiver.feed(&line), (80, false));
            if round > 0 {
                assert_eq!(receiver.held(), 0, "round {round}");
            }
        }
        assert_eq!(receiver.feed(b".\r\n"), (3, true));
        assert_eq!(receiver.finish(), Err(BodyError::TooBig));
    }
}
