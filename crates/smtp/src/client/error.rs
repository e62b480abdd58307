//! What can go wrong talking to a remote server, and at which step.

use std::fmt;
use std::io;

use super::reply::{Reply, enhanced_code};

/// The step of a session an error happened in (for log lines and bounces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Mail,
    Rcpt,
    Data,
    /// The message octets and the reply to their end (DATA's final dot, or BDAT LAST).
    EndOfData,
    Rset,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or was lost (the message says during which stage).
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no reply within the time limit ({stage})")]
    Timeout { stage: Stage },
    /// The server refused a step the session cannot go on without: the greeting,
    /// EHLO/HELO, STARTTLS or RSET. (Refusals of MAIL, RCPT and DATA are not errors:
    /// they are part of the [`super::Transaction`].)
    #[error("{stage} refused: {reply}")]
    Rejected { stage: Stage, reply: Reply },
    /// The server does not speak SMTP within our bounds: a reply line too long, too many
    /// lines, garbage, a reply we did not ask for.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The TLS handshake failed (certificate not accepted, protocol error).
    #[error("TLS: {0}")]
    Tls(String),
    /// The message cannot be sent to this server as it is: it needs an extension the
    /// server lacks (SMTPUTF8, REQUIRETLS), exceeds the server's SIZE, or has an address
    /// SMTP cannot carry. Permanent. The text starts with the RFC 3463 code a bounce
    /// should carry (`5.6.7`, `5.7.30`, `5.3.4`, `5.1.3`, ...).
    #[error("{0}")]
    Unsupported(String),
}

impl ClientError {
    /// Whether trying again later cannot help (a DSN is due): a 5xx refusal, or a message
    /// this server cannot take. Everything else (4xx, timeouts, lost connections,
    /// garbage, TLS failures) is worth another try, maybe at another host.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Rejected { reply, .. } => reply.is_permanent(),
            ClientError::Unsupported(_) => true,
            ClientError::Io(_)
            | ClientError::Timeout { .. }
            | ClientError::Malformed(_)
            | ClientError::Tls(_) => false,
        }
    }

    /// The RFC 3463 status a bounce should carry, when one is known.
    pub fn enhanced(&self) -> Option<(u8, u16, u16)> {
        match self {
            ClientError::Rejected { reply, .. } => reply.enhanced,
            ClientError::Unsupported(text) => enhanced_code(text).map(|(code, _)| code),
            _ => None,
        }
    }

    /// The connection ended, or could not be read, during `stage`.
    pub(crate) fn lost(stage: Stage, error: io::Error) -> Self {
        ClientError::Io(io::Error::new(error.kind(), format!("{stage}: {error}")))
    }

    pub(crate) fn closed(stage: Stage) -> Self {
        ClientError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{stage}: the server closed the connection"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, enhanced: Option<(u8, u16, u16)>) -> Reply {
        Reply {
            code,
            enhanced,
            text: "x".into(),
        }
    }

    #[test]
    fn permanence_follows_the_reply_class() {
        let refused = |code| ClientError::Rejected {
            stage: Stage::Ehlo,
            reply: reply(code, None),
        };
        assert!(refused(554).is_permanent());
        assert!(!refused(421).is_permanent());
        assert!(ClientError::Unsupported("5.6.7 x".into()).is_permanent());
        assert!(!ClientError::Timeout { stage: Stage::Data }.is_permanent());
        assert!(!ClientError::Malformed("x".into()).is_permanent());
        assert!(!ClientError::Tls("x".into()).is_permanent());
        assert!(!ClientError::closed(Stage::Rcpt).is_permanent());
    }

    #[test]
    fn enhanced_code_of_unsupported_is_its_first_word() {
        let error = ClientError::Unsupported("5.7.30 REQUIRETLS not offered".into());
        assert_eq!(error.enhanced(), Some((5, 7, 30)));
        let error = ClientError::Rejected {
            stage: Stage::Greeting,
            reply: reply(554, Some((5, 3, 2))),
        };
        assert_eq!(error.enhanced(), Some((5, 3, 2)));
    }

    #[test]
    fn messages_name_the_stage() {
        assert_eq!(
            ClientError::closed(Stage::Rcpt).to_string(),
            "RCPT TO: the server closed the connection"
        );
        assert_eq!(
            ClientError::Timeout {
                stage: Stage::EndOfData
            }
            .to_string(),
            "no reply within the time limit (end of data)"
        );
    }
}
