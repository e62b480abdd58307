//! The message on the wire: DATA with dot-stuffing (RFC 5321 §4.5.2), or one BDAT LAST
//! chunk (RFC 3030) with the octets as they are.

/// The message as DATA sends it: a dot doubled at the start of every line, a final CRLF
/// if the message lacks one, then the terminating `.` line.
///
/// "Start of a line" is after every LF, bare or not. Stored messages have CRLF endings
/// (our server refuses bare ones), so for them this is exactly RFC 5321's rule; for
/// anything else it keeps a receiver that ends lines at a bare LF from reading
/// `\n.\r\n` as the end of data, which would turn the rest of the message into commands
/// (SMTP smuggling, CVE-2023-51764).
pub(crate) fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let dots = message
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'.' && (i == 0 || message[i - 1] == b'\n'))
        .count();
    let mut out = Vec::with_capacity(message.len() + dots + 5);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The whole message as one last chunk, command and octets in one write.
pub(crate) fn bdat_last(message: &[u8]) -> Vec<u8> {
    let mut out = format!("BDAT {} LAST\r\n", message.len()).into_bytes();
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled_on_every_line() {
        assert_eq!(
            dot_stuffed(b".first\r\nmid.dle\r\n.\r\n..two\r\n"),
            b"..first\r\nmid.dle\r\n..\r\n...two\r\n.\r\n"
        );
    }

    #[test]
    fn a_message_without_final_crlf_gets_one() {
        assert_eq!(dot_stuffed(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(dot_stuffed(b"bare cr\r"), b"bare cr\r\r\n.\r\n");
        assert_eq!(dot_stuffed(b"x\r\n"), b"x\r\n.\r\n");
    }

    #[test]
    fn an_empty_message_is_just_the_terminator() {
        assert_eq!(dot_stuffed(b""), b".\r\n");
    }

    #[test]
    fn dots_after_a_bare_lf_are_stuffed_so_no_receiver_sees_an_early_end() {
        let stuffed = dot_stuffed(b"a\n.\r\nMAIL FROM:<x@y>\r\n");
        assert_eq!(stuffed, b"a\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
        assert!(!stuffed.windows(5).any(|w| w == b"\n.\r\nM"));
    }

    #[test]
    fn bdat_sends_the_octets_unchanged() {
        assert_eq!(bdat_last(b".x\r\n"), b"BDAT 4 LAST\r\n.x\r\n");
        assert_eq!(bdat_last(b""), b"BDAT 0 LAST\r\n");
    }
}
