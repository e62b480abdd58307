//! Replies from the server we deliver to (RFC 5321 §4.2), parsed line by line without
//! I/O. The server is not ours and may be hostile, so every reply is bounded: lines of
//! at most [`MAX_REPLY_LINE`] octets, at most [`MAX_REPLY_LINES`] lines, one code
//! throughout. Text is kept lossily as UTF-8 with control characters replaced, because it
//! ends up in our log lines and in bounce messages.
//!
//! smtp-proto has a reply parser, but it accepts continuation lines with a different code
//! and does not bound the number of lines; this one is small and strict where it matters.

use std::fmt;

use super::error::ClientError;

/// Longest reply line we accept, CRLF included. RFC 5321 §4.5.3.1.5 promises 512; real
/// servers put long URLs in their rejections, so there is room to spare.
pub const MAX_REPLY_LINE: usize = 4096;

/// Most lines in one reply (an EHLO reply has one per extension: a dozen or two).
pub const MAX_REPLY_LINES: usize = 100;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced status code, when the first line starts with one that
    /// matches the reply's class.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text of every line, enhanced codes removed, lines joined with `\n`.
    pub text: String,
}

impl Reply {
    /// 2xx: done. (354, "go on with the data", is none of positive, transient or
    /// permanent; the session handles it itself.)
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The text of each line.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }
}

/// `250 2.0.0 text`, a multi-line reply's lines separated by spaces, so it fits on one
/// log line.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some((class, subject, detail)) = self.enhanced {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        for (i, line) in self.lines().enumerate() {
            if i == 0 && line.is_empty() {
                continue;
            }
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Builds one reply from its lines as they arrive.
#[derive(Debug, Default)]
pub(crate) struct ReplyReader {
    code: Option<u16>,
    enhanced: Option<(u8, u16, u16)>,
    lines: Vec<String>,
}

impl ReplyReader {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Takes one line (line ending included, at most [`MAX_REPLY_LINE`] octets); returns
    /// the reply once its last line has come.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, ClientError> {
        if line.len() > MAX_REPLY_LINE {
            return Err(malformed(format!(
                "reply line longer than {MAX_REPLY_LINE} octets"
            )));
        }
        let line = strip_line_ending(line);
        let (code, last, text) = split_line(line)?;
        match self.code {
            None => self.code = Some(code),
            Some(first) if first != code => {
                return Err(malformed(format!(
                    "reply continues with code {code} after {first}"
                )));
            }
            Some(_) => {}
        }
        let text = String::from_utf8_lossy(text);
        let text = self.without_enhanced_code(code, &text);
        self.lines.push(printable(text));
        if last {
            let reply = Reply {
                code,
                enhanced: self.enhanced,
                text: self.lines.join("\n"),
            };
            *self = Self::default();
            return Ok(Some(reply));
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(malformed(format!(
                "reply of more than {MAX_REPLY_LINES} lines"
            )));
        }
        Ok(None)
    }

    /// The first line decides whether the reply has an enhanced code; later lines repeat
    /// it (RFC 2034 §3), and it is removed from them too.
    fn without_enhanced_code<'t>(&mut self, code: u16, text: &'t str) -> &'t str {
        let found =
            enhanced_code(text).filter(|((class, _, _), _)| u16::from(*class) == code / 100);
        match found {
            Some((enhanced, rest)) if self.lines.is_empty() => {
                self.enhanced = Some(enhanced);
                rest
            }
            Some((_, rest)) if self.enhanced.is_some() => rest,
            _ => text,
        }
    }
}

fn malformed(why: String) -> ClientError {
    ClientError::Malformed(why)
}

/// Servers should end lines with CRLF; a bare LF is tolerated on the reading side.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `code SP text`, `code - text` or a bare `code` (RFC 5321 §4.2). The first digit is 2
/// to 5 (§4.2.1); anything else is not SMTP.
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ClientError> {
    let garbage = || {
        let shown: String = String::from_utf8_lossy(&line[..line.len().min(40)]).into();
        malformed(format!("not an SMTP reply line: {:?}", printable(&shown)))
    };
    let [
        d0 @ b'2'..=b'5',
        d1 @ b'0'..=b'9',
        d2 @ b'0'..=b'9',
        rest @ ..,
    ] = line
    else {
        return Err(garbage());
    };
    let code = u16::from(d0 - b'0') * 100 + u16::from(d1 - b'0') * 10 + u16::from(d2 - b'0');
    match rest {
        [] => Ok((code, true, rest)),
        [b' ', text @ ..] => Ok((code, true, text)),
        [b'-', text @ ..] => Ok((code, false, text)),
        _ => Err(garbage()),
    }
}

/// `class.subject.detail` at the start of `text` (RFC 3463 §2), followed by a space or
/// the end; returns it and the text after it.
pub(crate) fn enhanced_code(text: &str) -> Option<((u8, u16, u16), &str)> {
    let (code, rest) = match text.split_once(' ') {
        Some((code, rest)) => (code, rest),
        None => (text, ""),
    };
    let mut parts = code.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() || !matches!(class, "2" | "4" | "5") {
        return None;
    }
    let number = |part: &str| {
        let digits =
            !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| part.parse::<u16>().ok()).flatten()
    };
    Some((
        (class.parse().ok()?, number(subject)?, number(detail)?),
        rest,
    ))
}

/// Control characters (a CR, an escape sequence) would let a server write into our logs.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&[u8]]) -> Result<Option<Reply>, ClientError> {
        let mut reader = ReplyReader::new();
        let mut result = Ok(None);
        for line in lines {
            result = reader.push(line);
            if !matches!(result, Ok(None)) {
                break;
            }
        }
        result
    }

    fn reply(lines: &[&[u8]]) -> Reply {
        parse(lines)
            .expect("a valid reply")
            .expect("a complete reply")
    }

    fn malformed_reason(lines: &[&[u8]]) -> String {
        match parse(lines) {
            Err(ClientError::Malformed(why)) => why,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let r = reply(&[b"250 2.1.0 Sender OK\r\n"]);
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, Some((2, 1, 0)));
        assert_eq!(r.text, "Sender OK");
        assert_eq!(r.to_string(), "250 2.1.0 Sender OK");
        assert!(r.is_positive() && !r.is_transient() && !r.is_permanent());
    }

    #[test]
    fn reply_classes() {
        let go_on = reply(&[b"354 go ahead\r\n"]);
        assert!(!go_on.is_positive() && !go_on.is_transient() && !go_on.is_permanent());
        assert!(reply(&[b"451 4.3.0 later\r\n"]).is_transient());
        assert!(reply(&[b"550 5.1.1 no such user\r\n"]).is_permanent());
    }

    #[test]
    fn bare_code_and_bare_lf_are_accepted() {
        let r = reply(&[b"250\n"]);
        assert_eq!((r.code, r.enhanced, r.text.as_str()), (250, None, ""));
        assert_eq!(r.to_string(), "250");
    }

    #[test]
    fn multi_line_reply_keeps_every_line() {
        let r = reply(&[
            b"250-mx.example.test greets you\r\n",
            b"250-PIPELINING\r\n",
            b"250 SIZE 1000\r\n",
        ]);
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(
            r.lines().collect::<Vec<_>>(),
            ["mx.example.test greets you", "PIPELINING", "SIZE 1000"]
        );
    }

    #[test]
    fn enhanced_code_is_removed_from_every_line() {
        let r = reply(&[
            b"550-5.7.1 Message refused\r\n",
            b"550 5.7.1 see https://example.test/why\r\n",
        ]);
        assert_eq!(r.enhanced, Some((5, 7, 1)));
        assert_eq!(r.text, "Message refused\nsee https://example.test/why");
        assert_eq!(
            r.to_string(),
            "550 5.7.1 Message refused see https://example.test/why"
        );
    }

    #[test]
    fn enhanced_code_of_another_class_is_just_text() {
        let r = reply(&[b"250 5.0.0 odd\r\n"]);
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text, "5.0.0 odd");
        let r = reply(&[b"250 2.1234.0 odd\r\n"]);
        assert_eq!(r.enhanced, None);
        let r = reply(&[b"250 2.0.0\r\n"]);
        assert_eq!((r.enhanced, r.text.as_str()), (Some((2, 0, 0)), ""));
    }

    #[test]
    fn continuation_with_another_code_is_malformed() {
        let why = malformed_reason(&[b"250-first\r\n", b"251 second\r\n"]);
        assert!(why.contains("251"), "{why}");
    }

    #[test]
    fn too_long_line_is_malformed() {
        let mut line = b"250 ".to_vec();
        line.resize(MAX_REPLY_LINE - 1, b'x');
        line.extend_from_slice(b"\r\n");
        assert!(parse(&[&line]).is_err());
        line.truncate(MAX_REPLY_LINE - 2);
        line.extend_from_slice(b"\r\n");
        assert_eq!(reply(&[&line]).code, 250);
    }

    #[test]
    fn too_many_lines_is_malformed() {
        let lines: Vec<&[u8]> = vec![b"250-x\r\n"; MAX_REPLY_LINES + 1];
        let why = malformed_reason(&lines);
        assert!(why.contains("lines"), "{why}");
        let mut lines: Vec<&[u8]> = vec![b"250-x\r\n"; MAX_REPLY_LINES - 1];
        lines.push(b"250 end\r\n");
        assert_eq!(reply(&lines).lines().count(), MAX_REPLY_LINES);
    }

    #[test]
    fn garbage_lines_are_malformed() {
        for line in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"2500 x\r\n",
            b"250x\r\n",
            b"650 x\r\n",
            b"150 x\r\n",
            b"\r\n",
            b"",
        ] {
            assert!(parse(&[line]).is_err(), "{line:?}");
        }
    }

    #[test]
    fn non_utf8_and_control_characters_are_kept_lossily() {
        let r = reply(&[b"550 bad \xff\xfe user \x1b[31m\r\n"]);
        assert_eq!(r.text, "bad \u{fffd}\u{fffd} user \u{fffd}[31m");
        let r = reply(&[b"550 a\rb\r\n"]);
        assert_eq!(r.text, "a\u{fffd}b");
    }

    #[test]
    fn the_reader_can_be_reused_after_a_reply() {
        let mut reader = ReplyReader::new();
        assert!(reader.push(b"250-a\r\n").unwrap().is_none());
        assert_eq!(reader.push(b"250 b\r\n").unwrap().unwrap().text, "a\nb");
        let next = reader.push(b"354 3.0.0 go\r\n").unwrap().unwrap();
        assert_eq!((next.code, next.enhanced), (354, None));
    }
}
