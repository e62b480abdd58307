//! One outgoing transaction without I/O: the envelope, the command lines that carry it
//! (with the MAIL parameters the message needs and the server offers), and the replies
//! that came back.
//!
//! Everything that can make a message unsendable to this server is decided here, before
//! a single byte is written, so a refusal costs no round trip and leaves the session clean.

use super::capabilities::Capabilities;
use super::error::ClientError;
use super::reply::Reply;

/// Longest path between the angle brackets (RFC 5321 §4.5.3.1.3).
const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEnvelope {
    /// The reverse-path; empty for the null sender `<>` (bounces, reports).
    pub sender: String,
    pub recipients: Vec<String>,
    /// The message was received with REQUIRETLS (RFC 8689): the server must offer it.
    pub require_tls: bool,
}

/// What the server answered to one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub mail: Reply,
    /// One reply per recipient, in the envelope's order. When MAIL was refused, each is
    /// that refusal (no RCPT was answered on its own).
    pub recipients: Vec<Reply>,
    /// The verdict on the message for every accepted recipient: the reply to the end of
    /// data, or the refusal of DATA/BDAT itself. `None` when no recipient was accepted.
    pub data: Option<Reply>,
}

impl Transaction {
    /// The reply that decides recipient `index`'s fate: its RCPT refusal, or the verdict
    /// on the message.
    pub fn outcome(&self, index: usize) -> Option<&Reply> {
        let rcpt = self.recipients.get(index)?;
        match &self.data {
            Some(data) if rcpt.is_positive() => Some(data),
            _ => Some(rcpt),
        }
    }

    /// Whether the message reached at least one recipient.
    pub fn delivered_to_any(&self) -> bool {
        self.data.as_ref().is_some_and(Reply::is_positive)
    }
}

/// The command lines of one transaction's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeCommands {
    pub mail: String,
    pub rcpts: Vec<String>,
}

impl EnvelopeCommands {
    /// Builds `MAIL FROM` with SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8
    /// (RFC 6531) and REQUIRETLS (RFC 8689) as the message needs and the server offers,
    /// and one `RCPT TO` per recipient; or says why this server cannot take the message.
    ///
    /// 8-bit content goes out even when 8BITMIME is not offered: RFC 6152 would have us
    /// downgrade it to 7 bits, which means rewriting MIME parts (and breaking DKIM
    /// signatures); servers without 8BITMIME are rare, and the few that refuse the
    /// message bounce it with a clear reply.
    pub(crate) fn new(
        envelope: &ClientEnvelope,
        message: &[u8],
        capabilities: &Capabilities,
    ) -> Result<Self, ClientError> {
        if envelope.recipients.is_empty() {
            return Err(ClientError::Unsupported(
                "5.5.1 a transaction needs at least one recipient".into(),
            ));
        }
        check_path(&envelope.sender, "5.1.7 sender")?;
        for recipient in &envelope.recipients {
            if recipient.is_empty() {
                return Err(ClientError::Unsupported(
                    "5.1.3 empty recipient address".into(),
                ));
            }
            check_path(recipient, "5.1.3 recipient")?;
        }
        let utf8_addresses =
            !envelope.sender.is_ascii() || envelope.recipients.iter().any(|r| !r.is_ascii());
        if utf8_addresses && !capabilities.smtputf8 {
            return Err(ClientError::Unsupported(
                "5.6.7 the server does not offer SMTPUTF8, which a non-ASCII address needs".into(),
            ));
        }
        if envelope.require_tls && !capabilities.requiretls {
            return Err(ClientError::Unsupported(
                "5.7.30 REQUIRETLS support required, and the server does not offer it".into(),
            ));
        }
        if let Some(limit) = capabilities.too_big(message.len()) {
            return Err(ClientError::Unsupported(format!(
                "5.3.4 message of {} octets exceeds the server's size limit of {limit}",
                message.len()
            )));
        }
        let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
        if capabilities.size.is_some() {
            mail.push_str(&format!(" SIZE={}", message.len()));
        }
        if capabilities.eight_bit_mime && !message.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8_addresses {
            mail.push_str(" SMTPUTF8");
        }
        if envelope.require_tls {
            mail.push_str(" REQUIRETLS");
        }
        mail.push_str("\r\n");
        let rcpts = envelope
            .recipients
            .iter()
            .map(|r| format!("RCPT TO:<{r}>\r\n"))
            .collect();
        Ok(Self { mail, rcpts })
    }
}

/// An address goes between angle brackets on a command line: a line break would end
/// the command early and start one of the address's choosing, so addresses with control
/// characters or brackets are never sent (whatever their origin: a DNS record names the
/// recipient of a report).
fn check_path(address: &str, what: &str) -> Result<(), ClientError> {
    if address.len() > MAX_PATH {
        return Err(ClientError::Unsupported(format!(
            "{what} address longer than {MAX_PATH} octets"
        )));
    }
    if address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
    {
        return Err(ClientError::Unsupported(format!(
            "{what} address {:?} cannot be written in an SMTP command",
            address.escape_debug().to_string()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(sender: &str, recipients: &[&str]) -> ClientEnvelope {
        ClientEnvelope {
            sender: sender.into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            require_tls: false,
        }
    }

    fn everything() -> Capabilities {
        Capabilities {
            starttls: true,
            pipelining: true,
            size: Some(1000),
            smtputf8: true,
            eight_bit_mime: true,
            chunking: true,
            requiretls: true,
            enhanced_status_codes: true,
        }
    }

    fn unsupported_code(result: Result<EnvelopeCommands, ClientError>) -> (u8, u16, u16) {
        let error = result.expect_err("refused");
        assert!(error.is_permanent(), "{error}");
        error.enhanced().expect("an enhanced code")
    }

    #[test]
    fn plain_ascii_message_to_a_bare_server() {
        let commands = EnvelopeCommands::new(
            &envelope("a@x.test", &["b@y.test", "c@y.test"]),
            b"hi\r\n",
            &Capabilities::default(),
        )
        .unwrap();
        assert_eq!(commands.mail, "MAIL FROM:<a@x.test>\r\n");
        assert_eq!(
            commands.rcpts,
            ["RCPT TO:<b@y.test>\r\n", "RCPT TO:<c@y.test>\r\n"]
        );
    }

    #[test]
    fn parameters_follow_the_message_and_the_offer() {
        let mut env = envelope("ä@x.test", &["b@y.test"]);
        env.require_tls = true;
        let commands = EnvelopeCommands::new(&env, "Grüße\r\n".as_bytes(), &everything()).unwrap();
        assert_eq!(
            commands.mail,
            "MAIL FROM:<ä@x.test> SIZE=9 BODY=8BITMIME SMTPUTF8 REQUIRETLS\r\n"
        );
        let commands =
            EnvelopeCommands::new(&envelope("", &["b@y.test"]), b"7bit\r\n", &everything())
                .unwrap();
        assert_eq!(commands.mail, "MAIL FROM:<> SIZE=6\r\n");
    }

    #[test]
    fn eight_bit_content_goes_out_without_8bitmime() {
        let caps = Capabilities {
            eight_bit_mime: false,
            ..everything()
        };
        let commands =
            EnvelopeCommands::new(&envelope("a@x", &["b@y"]), b"\xc3\xa4\r\n", &caps).unwrap();
        assert_eq!(commands.mail, "MAIL FROM:<a@x> SIZE=4\r\n");
    }

    #[test]
    fn non_ascii_address_without_smtputf8_is_5_6_7() {
        let caps = Capabilities {
            smtputf8: false,
            ..everything()
        };
        let result = EnvelopeCommands::new(&envelope("a@x", &["ü@y"]), b"", &caps);
        assert_eq!(unsupported_code(result), (5, 6, 7));
    }

    #[test]
    fn requiretls_not_offered_is_5_7_30() {
        let caps = Capabilities {
            requiretls: false,
            ..everything()
        };
        let mut env = envelope("a@x", &["b@y"]);
        env.require_tls = true;
        assert_eq!(
            unsupported_code(EnvelopeCommands::new(&env, b"", &caps)),
            (5, 7, 30)
        );
    }

    #[test]
    fn message_over_the_announced_size_is_5_3_4() {
        let message = vec![b'x'; 1001];
        let result = EnvelopeCommands::new(&envelope("a@x", &["b@y"]), &message, &everything());
        assert_eq!(unsupported_code(result), (5, 3, 4));
        assert!(
            EnvelopeCommands::new(&envelope("a@x", &["b@y"]), &message[..1000], &everything())
                .is_ok()
        );
    }

    #[test]
    fn addresses_that_would_break_the_command_line_are_never_sent() {
        for bad in ["b@y\r\nRCPT TO:<evil@z>", "b@y>", "<b@y", "b\0@y"] {
            let result = EnvelopeCommands::new(&envelope("a@x", &[bad]), b"", &everything());
            assert_eq!(unsupported_code(result), (5, 1, 3), "{bad:?}");
            let result = EnvelopeCommands::new(&envelope(bad, &["b@y"]), b"", &everything());
            assert_eq!(unsupported_code(result), (5, 1, 7), "{bad:?}");
        }
        let long = format!("{}@y", "a".repeat(MAX_PATH));
        let result = EnvelopeCommands::new(&envelope("a@x", &[&long]), b"", &everything());
        assert_eq!(unsupported_code(result), (5, 1, 3));
        let result = EnvelopeCommands::new(&envelope("a@x", &[]), b"", &everything());
        assert_eq!(unsupported_code(result), (5, 5, 1));
        let result = EnvelopeCommands::new(&envelope("a@x", &[""]), b"", &everything());
        assert_eq!(unsupported_code(result), (5, 1, 3));
    }

    #[test]
    fn outcome_is_the_rcpt_refusal_or_the_verdict_on_the_message() {
        let reply = |code: u16| Reply {
            code,
            enhanced: None,
            text: String::new(),
        };
        let transaction = Transaction {
            mail: reply(250),
            recipients: vec![reply(250), reply(550)],
            data: Some(reply(451)),
        };
        assert_eq!(transaction.outcome(0).unwrap().code, 451);
        assert_eq!(transaction.outcome(1).unwrap().code, 550);
        assert_eq!(transaction.outcome(2), None);
        assert!(!transaction.delivered_to_any());
    }
}
