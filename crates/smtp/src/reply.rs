//! SMTP replies (RFC 5321 §4.2) carrying RFC 3463 enhanced status codes, and the catalogue
//! of every fixed reply the server sends, so the wording lives in one place.

use std::borrow::Cow;
use std::fmt;

/// One reply: a code and one or more lines of text (an enhanced status code, when there
/// is one, is the start of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    lines: Vec<Cow<'static, str>>,
}

/// Reply text never carries control characters from the input (a CR or LF would end
/// the reply early).
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

impl Reply {
    pub(crate) fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (RFC 5321 §4.2.1): every line but the last has `-` after the code.
    pub(crate) fn multiline(code: u16, lines: Vec<Cow<'static, str>>) -> Self {
        Self { code, lines }
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> u16 {
        self.code
    }

    /// A 5xx reply: the client got something wrong, which counts against `max_errors`.
    pub(crate) fn is_permanent_error(&self) -> bool {
        self.code >= 500
    }

    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let separator = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{separator}{line}\r\n", self.code).as_bytes());
        }
    }

    pub(crate) fn greeting(hostname: &str) -> Self {
        Self::new(220, format!("{hostname} ESMTP sealpost"))
    }

    pub(crate) fn helo(hostname: &str) -> Self {
        Self::new(250, hostname.to_string())
    }

    pub(crate) fn ok() -> Self {
        Self::new(250, "2.0.0 OK")
    }

    pub(crate) fn sender_ok() -> Self {
        Self::new(250, "2.1.0 OK")
    }

    pub(crate) fn recipient_ok() -> Self {
        Self::new(250, "2.1.5 OK")
    }

    pub(crate) fn chunk_received(octets: usize) -> Self {
        Self::new(250, format!("2.0.0 {octets} octets received"))
    }

    pub(crate) fn message_accepted(id: &str) -> Self {
        Self::new(250, format!("2.0.0 OK: queued as {id}"))
    }

    /// The sender's domain's DMARC policy refuses the message (at the end of DATA).
    pub(crate) fn refused_by_policy(reason: &str) -> Self {
        Self::new(550, format!("5.7.1 {}", printable(reason)))
    }

    /// The message could not be authenticated for a temporary reason (DNS); the sender
    /// tries again later.
    pub(crate) fn authentication_unavailable(reason: &str) -> Self {
        Self::new(451, format!("4.7.1 {}", printable(reason)))
    }

    pub(crate) fn vrfy() -> Self {
        Self::new(
            252,
            "2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    pub(crate) fn help() -> Self {
        Self::new(
            214,
            "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH",
        )
    }

    pub(crate) fn closing(hostname: &str) -> Self {
        Self::new(221, format!("2.0.0 {hostname} closing connection"))
    }

    pub(crate) fn ready_for_tls() -> Self {
        Self::new(220, "2.0.0 Ready to start TLS")
    }

    pub(crate) fn auth_succeeded() -> Self {
        Self::new(235, "2.7.0 Authentication successful")
    }

    /// A SASL challenge (RFC 4954 §4); `challenge` is already base64.
    pub(crate) fn auth_challenge(challenge: &'static str) -> Self {
        Self::new(334, challenge)
    }

    pub(crate) fn start_mail_input() -> Self {
        Self::new(354, "Start mail input; end with <CRLF>.<CRLF>")
    }

    pub(crate) fn timeout() -> Self {
        Self::new(421, "4.4.2 timeout")
    }

    pub(crate) fn shutting_down() -> Self {
        Self::new(421, "4.3.2 shutting down")
    }

    pub(crate) fn too_many_errors() -> Self {
        Self::new(421, "4.7.0 too many errors")
    }

    pub(crate) fn store_unavailable() -> Self {
        Self::new(451, "4.3.0 temporary failure, try again later")
    }

    pub(crate) fn too_many_recipients() -> Self {
        Self::new(452, "4.5.3 too many recipients")
    }

    pub(crate) fn auth_throttled() -> Self {
        Self::new(454, "4.7.0 too many failed logins, try again later")
    }

    pub(crate) fn auth_unavailable() -> Self {
        Self::new(454, "4.7.0 temporary authentication failure")
    }

    pub(crate) fn unknown_command() -> Self {
        Self::new(500, "5.5.1 unrecognized command")
    }

    pub(crate) fn command_line_too_long() -> Self {
        Self::new(500, "5.5.2 line too long")
    }

    pub(crate) fn text_line_too_long() -> Self {
        Self::new(500, "5.5.6 line too long")
    }

    pub(crate) fn syntax(text: impl Into<Cow<'static, str>>) -> Self {
        Self::new(501, text)
    }

    pub(crate) fn bad_base64() -> Self {
        Self::new(501, "5.5.2 cannot decode base64 response")
    }

    pub(crate) fn malformed_sasl() -> Self {
        Self::new(501, "5.5.2 malformed authentication response")
    }

    pub(crate) fn auth_cancelled() -> Self {
        Self::new(501, "5.7.0 authentication cancelled")
    }

    pub(crate) fn not_implemented() -> Self {
        Self::new(502, "5.5.1 command not implemented")
    }

    pub(crate) fn auth_not_available() -> Self {
        Self::new(502, "5.5.1 AUTH not available on this port")
    }

    pub(crate) fn bad_sequence(text: &'static str) -> Self {
        Self::new(503, format!("5.5.1 {text}"))
    }

    pub(crate) fn unknown_mechanism() -> Self {
        Self::new(504, "5.5.4 unrecognized authentication mechanism")
    }

    pub(crate) fn auth_required() -> Self {
        Self::new(530, "5.7.0 Authentication required")
    }

    pub(crate) fn auth_failed() -> Self {
        Self::new(535, "5.7.8 Authentication credentials invalid")
    }

    pub(crate) fn encryption_required() -> Self {
        Self::new(
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
        )
    }

    pub(crate) fn unknown_recipient() -> Self {
        Self::new(550, "5.1.1 mailbox unavailable")
    }

    pub(crate) fn bare_line_ending() -> Self {
        Self::new(550, "5.6.0 bare CR or LF in message")
    }

    pub(crate) fn message_too_big() -> Self {
        Self::new(552, "5.3.4 message too big")
    }

    pub(crate) fn sender_not_owned() -> Self {
        Self::new(
            553,
            "5.7.1 sender address not owned by the authenticated user",
        )
    }

    pub(crate) fn utf8_address_without_smtputf8() -> Self {
        Self::new(
            553,
            "5.6.7 non-ASCII address requires MAIL FROM ... SMTPUTF8",
        )
    }

    pub(crate) fn relay_denied() -> Self {
        Self::new(554, "5.7.1 relay access denied")
    }

    pub(crate) fn no_valid_recipients() -> Self {
        Self::new(554, "5.5.1 no valid recipients")
    }

    pub(crate) fn unsupported_parameter() -> Self {
        Self::new(555, "5.5.4 parameter not recognized or not implemented")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_ends_with_crlf() {
        assert_eq!(Reply::ok().to_string(), "250 2.0.0 OK\r\n");
    }

    #[test]
    fn multiline_reply_marks_continuation_lines_with_dash() {
        let reply = Reply::multiline(250, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(reply.to_string(), "250-a\r\n250-b\r\n250 c\r\n");
    }

    #[test]
    fn empty_sasl_challenge_keeps_the_space() {
        assert_eq!(Reply::auth_challenge("").to_string(), "334 \r\n");
    }

    #[test]
    fn greeting_names_the_host() {
        assert_eq!(
            Reply::greeting("mx.example.test").to_string(),
            "220 mx.example.test ESMTP sealpost\r\n"
        );
    }
}
