//! Gathers one complete command from lines and literals, without I/O: the driver feeds
//! it lines and literal bytes and does what each [`FrameEvent`] says (send the `+`
//! continuation for a synchronizing literal, skip a refused non-synchronizing one).
//!
//! Literals are `{n}` (synchronizing: the client waits for `+`), `{n+}` (RFC 7888
//! LITERAL+, sent straight away) and `~{n}` (literal8). A literal over the limit is
//! refused without buffering it: a synchronizing one before the client sends it
//! (`NO [TOOBIG]`, RFC 7889), a non-synchronizing one after discarding its bytes, since
//! the client sends them regardless (RFC 7888 §4, `BAD [TOOBIG]`).

/// The most reserved for a literal before its bytes arrive.
const RESERVE_AHEAD: usize = 64 * 1024;

/// What the driver should do after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// A whole command, ready for the parser.
    Command(Vec<u8>),
    /// `size` literal octets follow; they go to [`Framer::push_literal`]. When
    /// `synchronizing`, the client waits for a continuation request first.
    Literal { size: usize, synchronizing: bool },
    /// Read and throw away `size` octets (a refused non-synchronizing literal).
    Discard { size: u64 },
    /// The command is refused before it was complete.
    Reject(Rejection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The command's tag, when the first line got far enough to show it.
    pub tag: Option<String>,
    pub reason: FrameError,
    /// The client stopped at a synchronizing literal and never sent the refused bytes.
    pub synchronizing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line too long")]
    LineTooLong,
    #[error("literal too large")]
    LiteralTooLarge,
    #[error("command too large")]
    CommandTooLarge,
}

impl Rejection {
    /// `NO` when the client has not sent the refused bytes (it waited for `+`), `BAD`
    /// when it had to.
    pub fn is_no(&self) -> bool {
        self.synchronizing
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FramerLimits {
    pub max_literal: u64,
    /// All lines and literals of one command together.
    pub max_command: u64,
}

pub struct Framer {
    limits: FramerLimits,
    buf: Vec<u8>,
    tag: Option<String>,
    /// Set once the command is refused; the rest of it is read and dropped.
    refused: Option<FrameError>,
    literal_left: usize,
}

/// A literal announced at the end of a line.
struct LiteralHeader {
    size: u64,
    synchronizing: bool,
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            tag: None,
            refused: None,
            literal_left: 0,
        }
    }

    /// Whether a command has been started and not finished.
    pub fn in_command(&self) -> bool {
        self.tag.is_some() || !self.buf.is_empty() || self.refused.is_some()
    }

    /// Feeds one line, line ending included.
    pub fn push_line(&mut self, line: &[u8]) -> FrameEvent {
        if self.tag.is_none() && self.buf.is_empty() {
            self.tag = first_word(line);
        }
        let header = literal_header(line);
        if let Some(reason) = self.refused {
            return match header {
                Some(h) if !h.synchronizing => FrameEvent::Discard { size: h.size },
                // The client now waits for `+` (or the line ended the command): answer.
                _ => FrameEvent::Reject(self.finish_rejected(reason, false)),
            };
        }
        let total = self.buf.len() as u64 + line.len() as u64;
        if total > self.limits.max_command {
            return self.refuse(FrameError::CommandTooLarge, header);
        }
        self.buf.extend_from_slice(line);
        match header {
            None => {
                self.tag = None;
                FrameEvent::Command(std::mem::take(&mut self.buf))
            }
            Some(h) if h.size > self.limits.max_literal => {
                self.refuse(FrameError::LiteralTooLarge, Some(h))
            }
            Some(h) if total + h.size > self.limits.max_command => {
                self.refuse(FrameError::CommandTooLarge, Some(h))
            }
            Some(h) => {
                let size = h.size as usize;
                // Grown as the bytes arrive, not as announced: a client that announces
                // a large literal and then stalls must not pin that much memory.
                self.buf.reserve(size.min(RESERVE_AHEAD));
                self.literal_left = size;
                FrameEvent::Literal {
                    size,
                    synchronizing: h.synchronizing,
                }
            }
        }
    }

    /// Literal octets; the driver passes exactly the announced number in total.
    pub fn push_literal(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.literal_left);
        self.buf.extend_from_slice(&bytes[..n]);
        self.literal_left -= n;
    }

    /// The line was longer than the limit (and has been skipped by the stream).
    pub fn line_too_long(&mut self) -> Rejection {
        self.finish_rejected(FrameError::LineTooLong, false)
    }

    fn refuse(&mut self, reason: FrameError, header: Option<LiteralHeader>) -> FrameEvent {
        match header {
            Some(h) if !h.synchronizing => {
                self.refused = Some(reason);
                self.buf = Vec::new();
                FrameEvent::Discard { size: h.size }
            }
            Some(_) => FrameEvent::Reject(self.finish_rejected(reason, true)),
            None => FrameEvent::Reject(self.finish_rejected(reason, false)),
        }
    }

    fn finish_rejected(&mut self, reason: FrameError, synchronizing: bool) -> Rejection {
        let rejection = Rejection {
            tag: self.tag.take(),
            reason,
            synchronizing,
        };
        self.buf = Vec::new();
        self.refused = None;
        self.literal_left = 0;
        rejection
    }
}

fn first_word(line: &[u8]) -> Option<String> {
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    (end > 0).then(|| String::from_utf8_lossy(&line[..end]).into_owned())
}

/// `{123}`, `{123+}` or `~{123}` right before the line ending.
fn literal_header(line: &[u8]) -> Option<LiteralHeader> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let synchronizing = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(LiteralHeader {
        size,
        synchronizing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(FramerLimits {
            max_literal: 100,
            max_command: 1000,
        })
    }

    #[test]
    fn a_plain_line_is_a_command() {
        let mut f = framer();
        assert_eq!(
            f.push_line(b"a NOOP\r\n"),
            FrameEvent::Command(b"a NOOP\r\n".to_vec())
        );
        assert!(!f.in_command());
    }

    #[test]
    fn literals_are_gathered_into_one_command() {
        let mut f = framer();
        assert_eq!(
            f.push_line(b"a LOGIN {4}\r\n"),
            FrameEvent::Literal {
                size: 4,
                synchronizing: true
            }
        );
        f.push_literal(b"us");
        f.push_literal(b"er");
        assert_eq!(
            f.push_line(b" {3+}\r\n"),
            FrameEvent::Literal {
                size: 3,
                synchronizing: false
            }
        );
        f.push_literal(b"pwd");
        assert_eq!(
            f.push_line(b"\r\n"),
            FrameEvent::Command(b"a LOGIN {4}\r\nuser {3+}\r\npwd\r\n".to_vec())
        );
    }

    #[test]
    fn synchronizing_literal_too_big_is_refused_before_it_is_sent() {
        let mut f = framer();
        let FrameEvent::Reject(rejection) = f.push_line(b"a7 APPEND INBOX {101}\r\n") else {
            panic!()
        };
        assert_eq!(rejection.tag.as_deref(), Some("a7"));
        assert_eq!(rejection.reason, FrameError::LiteralTooLarge);
        assert!(rejection.is_no());
        assert!(!f.in_command());
        assert!(matches!(f.push_line(b"b NOOP\r\n"), FrameEvent::Command(_)));
    }

    #[test]
    fn non_synchronizing_literal_too_big_is_discarded_then_refused() {
        let mut f = framer();
        assert_eq!(
            f.push_line(b"a8 APPEND INBOX {5000+}\r\n"),
            FrameEvent::Discard { size: 5000 }
        );
        let FrameEvent::Reject(rejection) = f.push_line(b"\r\n") else {
            panic!()
        };
        assert_eq!(rejection.tag.as_deref(), Some("a8"));
        assert!(!rejection.is_no());
        assert!(matches!(f.push_line(b"b NOOP\r\n"), FrameEvent::Command(_)));
    }

    #[test]
    fn command_size_is_bounded_across_literals() {
        let mut f = framer();
        for _ in 0..8 {
            let FrameEvent::Literal { size, .. } = f.push_line(b"a X {100+}\r\n") else {
                panic!()
            };
            f.push_literal(&vec![b'x'; size]);
        }
        assert_eq!(
            f.push_line(b"a X {100}\r\n"),
            FrameEvent::Reject(Rejection {
                tag: Some("a".into()),
                reason: FrameError::CommandTooLarge,
                synchronizing: true,
            })
        );
    }

    #[test]
    fn over_long_line_inside_a_command_keeps_the_tag() {
        let mut f = framer();
        assert!(matches!(
            f.push_line(b"t9 LOGIN {2}\r\n"),
            FrameEvent::Literal { .. }
        ));
        f.push_literal(b"ab");
        let rejection = f.line_too_long();
        assert_eq!(rejection.tag.as_deref(), Some("t9"));
        assert_eq!(rejection.reason, FrameError::LineTooLong);
        assert_eq!(f.line_too_long().tag, None);
    }

    #[test]
    fn braces_that_are_not_a_literal_header() {
        let mut f = framer();
        assert!(matches!(
            f.push_line(b"a SEARCH {x}\r\n"),
            FrameEvent::Command(_)
        ));
        assert!(matches!(
            f.push_line(b"a SEARCH {}\r\n"),
            FrameEvent::Command(_)
        ));
    }
}
