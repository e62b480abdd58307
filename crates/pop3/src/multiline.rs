//! Multi-line responses (RFC 1939 §3): each line that begins with "." gets another "."
//! in front, and a line holding only "." ends the response.
//!
//! A line starts after every LF, bare or not: a client that splits on LF alone (Python's
//! poplib does) must never see a "." line inside a message, or a stored message could end
//! the response early and smuggle in text of its own choosing. A client that splits on
//! CRLF only sees an extra "." inside such a malformed line, which is harmless.

/// Appends `text` dot-stuffed, then the terminating ".\r\n". A CRLF is added first when
/// `text` does not end in one, so the terminator starts a line of its own.
pub fn push_dot_stuffed(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + text.len() / 256 + 5);
    let mut rest = text;
    let mut at_line_start = true;
    while !rest.is_empty() {
        if at_line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                out.extend_from_slice(&rest[..=lf]);
                rest = &rest[lf + 1..];
                at_line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
                at_line_start = false;
            }
        }
    }
    if !text.is_empty() && !text.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// The part of a message TOP sends (RFC 1939 §7, TOP): the header, the empty line after
/// it, and the first `lines` lines of the body. A message without an empty line is all
/// header and is returned whole.
pub fn top(message: &[u8], lines: usize) -> &[u8] {
    let mut offset = 0;
    let mut in_body = false;
    let mut body_lines = 0;
    while offset < message.len() {
        if in_body && body_lines == lines {
            break;
        }
        let rest = &message[offset..];
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |lf| lf + 1);
        let line = &rest[..line_len];
        offset += line_len;
        if in_body {
            body_lines += 1;
        } else if line == b"\r\n" || line == b"\n" {
            in_body = true;
        }
    }
    &message[..offset]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_dot_stuffed(&mut out, text);
        out
    }

    #[test]
    fn retr_dot_stuffs_exactly() {
        assert_eq!(
            stuffed(b".first\r\nmid.dle\r\n.\r\n..\r\nend.\r\n"),
            b"..first\r\nmid.dle\r\n..\r\n...\r\nend.\r\n.\r\n"
        );
    }

    #[test]
    fn lines_after_a_bare_lf_are_stuffed_too() {
        assert_eq!(stuffed(b"a\n.\r\nb\r\n"), b"a\n..\r\nb\r\n.\r\n");
    }

    #[test]
    fn a_missing_final_crlf_is_added_before_the_terminator() {
        assert_eq!(
            stuffed(b"Subject: x\r\n\r\nno newline"),
            b"Subject: x\r\n\r\nno newline\r\n.\r\n"
        );
        assert_eq!(stuffed(b"bare lf\n"), b"bare lf\n\r\n.\r\n");
        assert_eq!(stuffed(b".only"), b"..only\r\n.\r\n");
    }

    #[test]
    fn an_empty_message_is_just_the_terminator() {
        assert_eq!(stuffed(b""), b".\r\n");
    }

    #[test]
    fn stuffing_a_large_message_keeps_every_octet() {
        let line = b".a line that starts with a dot\r\n";
        let message: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 40_000)
            .collect();
        let out = stuffed(&message);
        assert_eq!(out.len(), message.len() + 40_000 + 3);
        assert!(out.ends_with(b"\r\n.\r\n"));
    }

    const MESSAGE: &[u8] = b"From: a@example.test\r\nSubject: hi\r\n\r\none\r\ntwo\r\nthree\r\n";

    #[test]
    fn top_returns_headers_and_n_lines() {
        assert_eq!(
            top(MESSAGE, 2),
            b"From: a@example.test\r\nSubject: hi\r\n\r\none\r\ntwo\r\n"
        );
    }

    #[test]
    fn top_with_zero_lines_returns_the_header_and_the_empty_line() {
        assert_eq!(
            top(MESSAGE, 0),
            b"From: a@example.test\r\nSubject: hi\r\n\r\n"
        );
    }

    #[test]
    fn top_with_more_lines_than_the_body_returns_everything() {
        assert_eq!(top(MESSAGE, 100), MESSAGE);
    }

    #[test]
    fn top_of_a_message_without_body_returns_it_whole() {
        assert_eq!(
            top(b"Subject: only\r\nX: y\r\n", 0),
            b"Subject: only\r\nX: y\r\n"
        );
        assert_eq!(top(b"Subject: unterminated", 3), b"Subject: unterminated");
    }

    #[test]
    fn top_counts_a_last_line_without_crlf() {
        assert_eq!(top(b"A: b\r\n\r\nx\r\ny", 2), b"A: b\r\n\r\nx\r\ny");
    }
}
